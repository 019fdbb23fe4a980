"""PSPNet Studio's engine: the narrow public API that app/, the CLI and the tests use.

Names are imported lazily (on first use), so ``import core`` stays cheap and a GUI that only
needs the class table does not pay for every module. core never imports Qt, pyqtgraph or app.
The ``TYPE_CHECKING`` block imports the same names for type checkers, so ``core.LoadedModel``
is a real annotation in the app. Long jobs follow one rule: core/generators.py.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # settings, model, loss
    "ModelConfig": "core.config",
    "save_config": "core.config",
    "load_config": "core.config",
    "PSPNet": "core.model",
    "PSPNetOutput": "core.model",
    "Internals": "core.model",
    "PyramidLevel": "core.model",
    "optimize_for_inference": "core.model.inference",
    "InferencePSPNet": "core.model.inference",
    "pspnet_loss": "core.loss",
    "LossParts": "core.loss",
    "IGNORE_INDEX": "core.loss",
    "ClassTable": "core.classes",
    "atomic_write": "core.atomic",
    "atomic_write_bytes": "core.atomic",
    # errors
    "StudioError": "core.errors",
    "ImageReadError": "core.errors",
    "MaskError": "core.errors",
    "DatasetError": "core.errors",
    "CheckpointError": "core.errors",
    "TrainingError": "core.errors",
    "Cancelled": "core.errors",
    "WriteError": "core.errors",
    "MaskWriteError": "core.errors",
    "ProjectFileError": "core.errors",
    "ClassTableError": "core.errors",
    "ProjectLockedError": "core.errors",
    "ReadOnlyProjectError": "core.errors",
    # checkpoints and importers
    "load_model": "core.weights",
    "save_checkpoint": "core.weights",
    "LoadedModel": "core.weights",
    "LoadReport": "core.weights",
    "fetch_backbone_weights": "core.weights",
    "build_model": "core.weights",
    "load_backbone": "core.weights",
    "InertObject": "core.weights.unpickle",
    # pretrained models: the zoo, downloads (generators of DownloadProgress with a cancel flag), the cache
    "ZooEntry": "core.zoo",
    "ZooError": "core.zoo",
    "zoo_entries": "core.zoo",
    "zoo_entry": "core.zoo",
    "fetch_model": "core.zoo",
    "install_model_files": "core.zoo",
    "cached_model_files": "core.zoo",
    "model_cache_dir": "core.zoo",
    "download_file": "core.download",
    "DownloadProgress": "core.download",
    "DownloadError": "core.download",
    "app_data_dir": "core.paths",
    # images, masks, data sets
    "read_image": "core.data.io",
    "read_image_checked": "core.data.io",
    "DecodedImage": "core.data.io",
    "image_info": "core.data.io",
    "read_mask": "core.data.io",
    "write_mask": "core.data.io",
    "image_size": "core.data.io",
    "open_dataset": "core.data.datasets",
    "SegmentationDataset": "core.data.datasets",
    "ClassRemap": "core.data.remap",
    "TrainAugment": "core.data.augment",
    "write_demo_project": "core.data.synthetic",
    "demo_labels": "core.data.synthetic",
    "generate_scene": "core.data.synthetic",
    "SYNTHETIC_CLASSES": "core.data.synthetic",
    # metrics, inference, training
    "ConfusionMatrix": "core.metrics",
    "SegMetrics": "core.metrics",
    "Predictor": "core.inference",
    "Prediction": "core.inference",
    "Preview": "core.inference",
    "PhotoProbs": "core.inference",
    "TestProtocol": "core.inference",
    "MULTI_SCALES": "core.inference",
    "MemoryEstimate": "core.inference",
    "PredictionError": "core.inference",
    "PredictionTooLarge": "core.inference",
    "PredictionOutOfMemory": "core.inference",
    "available_memory": "core.inference",
    "TrainConfig": "core.training",
    "TrainProgress": "core.training",
    "TrainResult": "core.training",
    "train": "core.training",
    "finetune": "core.training",
    "export_onnx": "core.export",
    "recommended_threads": "core.threads",
    "apply_thread_settings": "core.threads",
    "prefer_passive_waiting": "core.threads",
    "ThreadSettingError": "core.threads",
    # mask correction and the project folder
    "LabelMask": "core.labels",
    "Region": "core.labels",
    "Edit": "core.labels",
    "StrokeJournal": "core.journal",
    "JournalStatus": "core.journal",
    "LockHolder": "core.project_lock",
    "Project": "core.project",
    "ImageEntry": "core.project",
    "CheckpointEntry": "core.project",
    "RecoveryResult": "core.project",
    "UnreadableMaskError": "core.project",
    # looking inside a prediction (the GUI's inspectors)
    "as_chw": "core.inspect",
    "to_uint8": "core.inspect",
    "channel_map": "core.inspect",
    "mean_abs_activation": "core.inspect",
    "top_channels": "core.inspect",
    "PCABasis": "core.inspect",
    "fit_pca": "core.inspect",
    "pca_rgb": "core.inspect",
    "ChangeMap": "core.inspect",
    "change_map": "core.inspect",
    "class_shares": "core.inspect",
    "top_k_at": "core.inspect",
    "LevelSwitch": "core.inference",
    "available_devices": "core.inspect",
    "device_name": "core.inspect",
    # what to correct next
    "uncertainty_map": "core.uncertainty",
    "image_score": "core.uncertainty",
    "uncertain_regions": "core.uncertainty",
    "rank_images": "core.uncertainty",
    "RegionScore": "core.uncertainty",
    "RankingRule": "core.uncertainty",
    "DEFAULT_RULE": "core.uncertainty",
    "UncertaintyMaps": "core.uncertainty",
    "uncertainty_maps": "core.uncertainty",
    "region_scores": "core.uncertainty",
    "rank_regions": "core.uncertainty",
    # jobs and their rule (core/generators.py), shared constants
    "Progress": "core.generators",
    "Cancel": "core.generators",
    "is_cancelled": "core.generators",
    "check_cancel": "core.generators",
    "as_progress": "core.generators",
    "relay": "core.generators",
    "run_to_end": "core.generators",
    "IGNORE": "core.constants",
    "IMAGE_EXTENSIONS": "core.constants",
    "MaskState": "core.constants",
    "NO_MASK": "core.constants",
    "MASK": "core.constants",
    "UNREADABLE": "core.constants",
    "MASK_STATES": "core.constants",
    # the jobs the app runs in its workers (core/jobs/)
    "ImageData": "core.jobs.images",
    "read_image_and_mask": "core.jobs.images",
    "ListedImage": "core.jobs.images",
    "FolderListing": "core.jobs.images",
    "list_folder": "core.jobs.images",
    "listing_of_image": "core.jobs.images",
    "is_image": "core.jobs.images",
    "is_project_folder": "core.jobs.images",
    "image_file_filter": "core.jobs.images",
    "Predictors": "core.jobs.models",
    "model_protocol": "core.jobs.models",
    "load_model_job": "core.jobs.models",
    "place_model_job": "core.jobs.models",
    "copy_model": "core.jobs.models",
    "copy_loaded_job": "core.jobs.models",
    "as_loaded": "core.jobs.models",
    "Outcome": "core.jobs.outcome",
    "derive_outcome": "core.jobs.outcome",
    "predict_outcome": "core.jobs.outcome",
    "PreviewReady": "core.jobs.outcome",
    "SwitchReady": "core.jobs.outcome",
    "materialize_job": "core.jobs.outcome",
    "overlay_map": "core.jobs.outcome",
    "overlay_map_job": "core.jobs.outcome",
    "level_switch": "core.jobs.outcome",
    "prepare_level_switch": "core.jobs.outcome",
    "rerun_outcome": "core.jobs.outcome",
    "LevelSummary": "core.jobs.pyramid_summary",
    "PyramidSummary": "core.jobs.pyramid_summary",
    "summarise_pyramid": "core.jobs.pyramid_summary",
    "load_mask_job": "core.jobs.masks",
    "save_mask_job": "core.jobs.masks",
    "save_masks_job": "core.jobs.masks",
    "SavedMasks": "core.jobs.masks",
    "recoverable_job": "core.jobs.masks",
    "recover_job": "core.jobs.masks",
    "Recovery": "core.jobs.masks",
    "create_project_job": "core.jobs.masks",
    "restore_model_job": "core.jobs.masks",
    "close_project_job": "core.jobs.masks",
    "FINETUNE_DEFAULTS": "core.jobs.finetune_project",
    "finetune_config": "core.jobs.finetune_project",
    "finetune_project": "core.jobs.finetune_project",
    "ProjectFinetune": "core.jobs.finetune_project",
    "record_finetune": "core.jobs.finetune_project",
    "history_metrics": "core.jobs.finetune_project",
    "auto_crop": "core.jobs.finetune_project",
    "warm_up_training": "core.jobs.finetune_project",
    "Agreement": "core.jobs.compare",
    "compare_models": "core.jobs.compare",
    "agreement_summary": "core.jobs.compare",
    "agreement_text": "core.jobs.compare",
    "ImageUncertainty": "core.jobs.ranking",
    "ScoredImage": "core.jobs.ranking",
    "score_prediction": "core.jobs.ranking",
    "uncertain_regions_job": "core.jobs.ranking",
    "score_images": "core.jobs.ranking",
    "ranked_indices": "core.jobs.ranking",
    "assess": "core.jobs.ranking",
    "RegionQueue": "core.jobs.ranking",
    "QueuedRegion": "core.jobs.ranking",
    "DemoProgress": "core.jobs.demo_model",
    "DEMO_PROJECT_PARAMS": "core.jobs.demo_model",
    "ensure_demo_project": "core.jobs.demo_model",
    "train_demo_model": "core.jobs.demo_model",
    "demo_model_config": "core.jobs.demo_model",
    "demo_train_config": "core.jobs.demo_model",
    # class tables of projects and models: built-in tables, differences, a model rebuilt for a project's table
    "builtin_class_tables": "core.jobs.class_tables",
    "classes_differ": "core.jobs.class_tables",
    "describe_difference": "core.jobs.class_tables",
    "highest_mask_id": "core.jobs.class_tables",
    "adapt_model": "core.jobs.class_tables",
    "adapt_model_job": "core.jobs.class_tables",
    "AdaptedModel": "core.jobs.class_tables",
}

if TYPE_CHECKING:  # the same names, for type checkers and editors (tests/test_architecture.py keeps them equal)
    from core.config import ModelConfig as ModelConfig, save_config as save_config, load_config as load_config
    from core.model import (
        PSPNet as PSPNet, PSPNetOutput as PSPNetOutput, Internals as Internals, PyramidLevel as PyramidLevel)
    from core.model.inference import (
        optimize_for_inference as optimize_for_inference, InferencePSPNet as InferencePSPNet)
    from core.loss import pspnet_loss as pspnet_loss, LossParts as LossParts, IGNORE_INDEX as IGNORE_INDEX
    from core.classes import ClassTable as ClassTable
    from core.atomic import atomic_write as atomic_write, atomic_write_bytes as atomic_write_bytes
    from core.errors import (
        StudioError as StudioError, ImageReadError as ImageReadError, MaskError as MaskError,
        DatasetError as DatasetError, CheckpointError as CheckpointError, TrainingError as TrainingError,
        Cancelled as Cancelled, WriteError as WriteError, MaskWriteError as MaskWriteError,
        ProjectFileError as ProjectFileError, ClassTableError as ClassTableError,
        ProjectLockedError as ProjectLockedError, ReadOnlyProjectError as ReadOnlyProjectError)
    from core.weights import (
        load_model as load_model, save_checkpoint as save_checkpoint, LoadedModel as LoadedModel,
        LoadReport as LoadReport, fetch_backbone_weights as fetch_backbone_weights, build_model as build_model,
        load_backbone as load_backbone)
    from core.weights.unpickle import InertObject as InertObject
    from core.zoo import (
        ZooEntry as ZooEntry, ZooError as ZooError, zoo_entries as zoo_entries, zoo_entry as zoo_entry,
        fetch_model as fetch_model, install_model_files as install_model_files,
        cached_model_files as cached_model_files, model_cache_dir as model_cache_dir)
    from core.download import (
        download_file as download_file, DownloadProgress as DownloadProgress, DownloadError as DownloadError)
    from core.paths import app_data_dir as app_data_dir
    from core.data.io import (
        read_image as read_image, read_image_checked as read_image_checked, DecodedImage as DecodedImage,
        image_info as image_info, read_mask as read_mask, write_mask as write_mask, image_size as image_size)
    from core.data.datasets import open_dataset as open_dataset, SegmentationDataset as SegmentationDataset
    from core.data.remap import ClassRemap as ClassRemap
    from core.data.augment import TrainAugment as TrainAugment
    from core.data.synthetic import (
        write_demo_project as write_demo_project, demo_labels as demo_labels, generate_scene as generate_scene,
        SYNTHETIC_CLASSES as SYNTHETIC_CLASSES)
    from core.metrics import ConfusionMatrix as ConfusionMatrix, SegMetrics as SegMetrics
    from core.inference import (
        Predictor as Predictor, Prediction as Prediction, Preview as Preview, PhotoProbs as PhotoProbs,
        TestProtocol as TestProtocol, MULTI_SCALES as MULTI_SCALES, MemoryEstimate as MemoryEstimate,
        PredictionError as PredictionError, PredictionTooLarge as PredictionTooLarge,
        PredictionOutOfMemory as PredictionOutOfMemory, available_memory as available_memory,
        LevelSwitch as LevelSwitch)
    from core.training import (
        TrainConfig as TrainConfig, TrainProgress as TrainProgress, TrainResult as TrainResult, train as train,
        finetune as finetune)
    from core.export import export_onnx as export_onnx
    from core.threads import (
        recommended_threads as recommended_threads, apply_thread_settings as apply_thread_settings,
        prefer_passive_waiting as prefer_passive_waiting, ThreadSettingError as ThreadSettingError)
    from core.labels import LabelMask as LabelMask, Region as Region, Edit as Edit
    from core.journal import StrokeJournal as StrokeJournal, JournalStatus as JournalStatus
    from core.project_lock import LockHolder as LockHolder
    from core.project import (
        Project as Project, ImageEntry as ImageEntry, CheckpointEntry as CheckpointEntry,
        RecoveryResult as RecoveryResult, UnreadableMaskError as UnreadableMaskError)
    from core.inspect import (
        as_chw as as_chw, to_uint8 as to_uint8, channel_map as channel_map, mean_abs_activation as mean_abs_activation,
        top_channels as top_channels, PCABasis as PCABasis, fit_pca as fit_pca, pca_rgb as pca_rgb,
        ChangeMap as ChangeMap, change_map as change_map, class_shares as class_shares, top_k_at as top_k_at,
        available_devices as available_devices, device_name as device_name)
    from core.uncertainty import (
        uncertainty_map as uncertainty_map, image_score as image_score, uncertain_regions as uncertain_regions,
        rank_images as rank_images, RegionScore as RegionScore, RankingRule as RankingRule,
        DEFAULT_RULE as DEFAULT_RULE, UncertaintyMaps as UncertaintyMaps, uncertainty_maps as uncertainty_maps,
        region_scores as region_scores, rank_regions as rank_regions)
    from core.generators import (
        Progress as Progress, Cancel as Cancel, is_cancelled as is_cancelled, check_cancel as check_cancel,
        as_progress as as_progress, relay as relay, run_to_end as run_to_end)
    from core.constants import (
        IGNORE as IGNORE, IMAGE_EXTENSIONS as IMAGE_EXTENSIONS, MaskState as MaskState, NO_MASK as NO_MASK,
        MASK as MASK, UNREADABLE as UNREADABLE, MASK_STATES as MASK_STATES)
    from core.jobs.images import (
        ImageData as ImageData, read_image_and_mask as read_image_and_mask, ListedImage as ListedImage,
        FolderListing as FolderListing, list_folder as list_folder, listing_of_image as listing_of_image,
        is_image as is_image, is_project_folder as is_project_folder, image_file_filter as image_file_filter)
    from core.jobs.models import (
        Predictors as Predictors, model_protocol as model_protocol, load_model_job as load_model_job,
        place_model_job as place_model_job, copy_model as copy_model, copy_loaded_job as copy_loaded_job,
        as_loaded as as_loaded)
    from core.jobs.outcome import (
        Outcome as Outcome, derive_outcome as derive_outcome, predict_outcome as predict_outcome,
        PreviewReady as PreviewReady, SwitchReady as SwitchReady, materialize_job as materialize_job,
        overlay_map as overlay_map, overlay_map_job as overlay_map_job, level_switch as level_switch,
        prepare_level_switch as prepare_level_switch, rerun_outcome as rerun_outcome)
    from core.jobs.pyramid_summary import (
        LevelSummary as LevelSummary, PyramidSummary as PyramidSummary, summarise_pyramid as summarise_pyramid)
    from core.jobs.masks import (
        load_mask_job as load_mask_job, save_mask_job as save_mask_job, save_masks_job as save_masks_job,
        SavedMasks as SavedMasks, recoverable_job as recoverable_job, recover_job as recover_job, Recovery as Recovery,
        create_project_job as create_project_job, restore_model_job as restore_model_job,
        close_project_job as close_project_job)
    from core.jobs.finetune_project import (
        FINETUNE_DEFAULTS as FINETUNE_DEFAULTS, finetune_config as finetune_config,
        finetune_project as finetune_project, ProjectFinetune as ProjectFinetune, record_finetune as record_finetune,
        history_metrics as history_metrics, auto_crop as auto_crop, warm_up_training as warm_up_training)
    from core.jobs.compare import (
        Agreement as Agreement, compare_models as compare_models, agreement_summary as agreement_summary,
        agreement_text as agreement_text)
    from core.jobs.ranking import (
        ImageUncertainty as ImageUncertainty, ScoredImage as ScoredImage, score_prediction as score_prediction,
        uncertain_regions_job as uncertain_regions_job, score_images as score_images, ranked_indices as ranked_indices,
        assess as assess, RegionQueue as RegionQueue, QueuedRegion as QueuedRegion)
    from core.jobs.demo_model import (
        DemoProgress as DemoProgress, DEMO_PROJECT_PARAMS as DEMO_PROJECT_PARAMS,
        ensure_demo_project as ensure_demo_project, train_demo_model as train_demo_model,
        demo_model_config as demo_model_config, demo_train_config as demo_train_config)
    from core.jobs.class_tables import (
        builtin_class_tables as builtin_class_tables, classes_differ as classes_differ,
        describe_difference as describe_difference, highest_mask_id as highest_mask_id, adapt_model as adapt_model,
        adapt_model_job as adapt_model_job, AdaptedModel as AdaptedModel)


__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__

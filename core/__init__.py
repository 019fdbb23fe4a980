"""PSPNet Studio's engine: the narrow public API that app/, the CLI and the tests use.

Names are imported lazily (on first use), so ``import core`` stays cheap and a GUI that only
needs the class table does not pay for every module. core never imports Qt, pyqtgraph or app.
"""

from __future__ import annotations

import importlib
from typing import Any

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
    # checkpoints and importers
    "load_model": "core.weights",
    "save_checkpoint": "core.weights",
    "LoadedModel": "core.weights",
    "LoadReport": "core.weights",
    "fetch_backbone_weights": "core.weights",
    "build_model": "core.weights",
    "load_backbone": "core.weights",
    # images, masks, data sets
    "read_image": "core.data.io",
    "read_mask": "core.data.io",
    "write_mask": "core.data.io",
    "image_size": "core.data.io",
    "open_dataset": "core.data.datasets",
    "SegmentationDataset": "core.data.datasets",
    "ClassRemap": "core.data.remap",
    "TrainAugment": "core.data.augment",
    "write_demo_project": "core.data.synthetic",
    "generate_scene": "core.data.synthetic",
    "SYNTHETIC_CLASSES": "core.data.synthetic",
    # metrics, inference, training
    "ConfusionMatrix": "core.metrics",
    "SegMetrics": "core.metrics",
    "Predictor": "core.infer",
    "Prediction": "core.infer",
    "TrainConfig": "core.training",
    "TrainProgress": "core.training",
    "TrainResult": "core.training",
    "train": "core.training",
    "finetune": "core.training",
    "export_onnx": "core.export",
    "recommended_threads": "core.threads",
    "apply_thread_settings": "core.threads",
    "ThreadSettingError": "core.threads",
    # mask correction and the project folder
    "LabelMask": "core.labels",
    "Region": "core.labels",
    "Edit": "core.labels",
    "StrokeJournal": "core.journal",
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
    "LevelSwitch": "core.inspect",
    "available_devices": "core.inspect",
    "device_name": "core.inspect",
    # what to correct next
    "uncertainty_map": "core.uncertainty",
    "image_score": "core.uncertainty",
    "uncertain_regions": "core.uncertainty",
    "rank_images": "core.uncertainty",
    "RegionScore": "core.uncertainty",
}

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

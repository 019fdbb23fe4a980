"""``train`` (a data set folder) and ``finetune`` (a project's painted masks).

Settings come from, in rising priority: the defaults (the paper's), ``--config FILE`` (JSON or
TOML with a ``[model]`` and a ``[train]`` table; keys at the top level are TrainConfig fields),
then the options on the command line. ``--save-config FILE`` writes what was used.

Both run under ``torchrun --nproc_per_node=N main.py train ...``: core.train joins the process
group; only rank 0 shows progress and writes files. Ctrl-C stops after the current step and saves
the weights reached so far (a second Ctrl-C stops at once).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import signal
import threading
from pathlib import Path
from typing import Any, Iterator

from core.cli import command
from core.commands._common import add_model_source, add_quiet, command_line, progress, say
from core.errors import Cancelled
from core.generators import run_to_end

# option dest -> ModelConfig field (options default to None = "not given")
MODEL_OPTIONS = {
    "backbone": "depth", "width": "base_width", "stem": "stem", "stem_width": "stem_width",
    "output_stride": "output_stride", "dilation": "dilation", "bins": "bins", "pooling": "pooling",
    "no_reduction": "reduction", "reduction_channels": "reduction_channels", "no_ppm": "use_ppm",
    "align_corners": "align_corners", "head_channels": "head_channels", "aux_channels": "aux_channels",
    "dropout": "dropout", "no_aux": "aux",
}
# option dest -> TrainConfig field
TRAIN_OPTIONS = {
    "steps": "steps", "batch": "batch", "crop": "crop", "lr": "lr", "head_lr_mult": "head_lr_mult",
    "momentum": "momentum", "weight_decay": "weight_decay", "power": "power", "aux_weight": "aux_weight",
    "scale": "scale", "rotate": "rotate", "blur": "blur", "no_flip": "flip", "seed": "seed", "workers": "workers",
    "device": "device", "amp": "amp", "channels_last": "channels_last", "val_every": "val_every",
    "val_limit": "val_limit", "checkpoint_every": "checkpoint_every", "checkpoint_dir": "checkpoint_dir",
    "resume": "resume", "freeze_backbone": "freeze_backbone", "cache_features": "cache_features",
    "val_fraction": "val_fraction", "sync_bn": "sync_bn",
}
NEGATED = {"no_reduction", "no_ppm", "no_aux", "no_flip"}  # store_true options that switch a field off


def _depth(text: str) -> int:
    t = text.lower().removeprefix("resnet")
    if t.isdigit() and int(t) in (18, 34, 50, 101, 152):
        return int(t)
    raise argparse.ArgumentTypeError(f"{text!r}: use resnet18, resnet34, resnet50, resnet101 or resnet152")


def _on_off(text: str) -> bool:
    t = text.lower()
    if t in ("on", "true", "yes", "1"):
        return True
    if t in ("off", "false", "no", "0"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r}: use on or off")


def _flag(g: Any, name: str, help: str) -> None:
    g.add_argument(name, action="store_true", default=None, help=help)


def _model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("a new model (ModelConfig; the default is the paper's PSPNet-ResNet50)")
    g.add_argument("--backbone", type=_depth, metavar="resnetNN", help="resnet18/34/50/101/152 (default resnet50)")
    g.add_argument("--width", type=int, metavar="N", help="base width of the ResNet (64 = ResNet proper; smaller "
                                                          "makes a tiny model)")
    g.add_argument("--stem", choices=["deep", "plain"], help="deep (three 3x3 convs, the authors') or plain (7x7)")
    g.add_argument("--stem-width", type=int, metavar="N", help="deep stem width (default 2 x width)")
    g.add_argument("--output-stride", type=int, choices=[8, 16], help="8 (paper) or 16")
    g.add_argument("--dilation", choices=["all", "halved_first"], help="where dilation starts")
    g.add_argument("--bins", type=int, nargs="+", metavar="B", help="pyramid bins (default 1 2 3 6)")
    g.add_argument("--pooling", choices=["avg", "max"], help="pyramid pooling (default avg)")
    _flag(g, "--no-reduction", "no 1x1 reduction in the pyramid branches")
    g.add_argument("--reduction-channels", type=int, metavar="N", help="branch width (default C / number of bins)")
    _flag(g, "--no-ppm", "no pyramid at all (the dilated-FCN baseline)")
    g.add_argument("--align-corners", type=_on_off, metavar="on|off", help="bilinear upsampling convention "
                                                                           "(default on, as the authors')")
    g.add_argument("--head-channels", type=int, metavar="N", help="main head width (default 512)")
    g.add_argument("--aux-channels", type=int, metavar="N", help="aux head width (default 256)")
    g.add_argument("--dropout", type=float, help="head dropout (default 0.1)")
    _flag(g, "--no-aux", "no auxiliary head")
    g.add_argument("--backbone-weights", metavar="FILE", help="initialise the backbone from this file (an ImageNet "
                                                              "ResNet or any checkpoint's backbone)")
    g.add_argument("--imagenet", action="store_true", help="initialise the backbone with torchvision's ImageNet "
                                                          "weights (downloaded once; needs --stem plain)")


# the finetune command's defaults (core.FINETUNE_DEFAULTS), as its --help shows them
_FINETUNE_HELP = {"steps": "default 150", "batch": "default 8", "crop": "default: the labelled images' longest side, "
                  "at most 473", "lr": "default 0.02", "scale": "default 0.75 1.5", "rotate": "default 5",
                  "val_every": "default: steps / 5", "val_limit": "default 16"}


def _train_options(p: argparse.ArgumentParser, *, finetune: bool = False) -> None:
    def d(name: str, text: str) -> str:  # the default named in a help text
        return _FINETUNE_HELP.get(name, text) if finetune else text

    g = p.add_argument_group("training (TrainConfig; defaults are the paper's)" if not finetune else
                             "fine-tuning (TrainConfig; defaults suit a project: core.FINETUNE_DEFAULTS)")
    g.add_argument("--config", metavar="FILE", help="JSON or TOML settings: a [model] and a [train] table (top-level "
                                                    "keys are training settings); options given here win")
    g.add_argument("--save-config", metavar="FILE", help="write the settings used (JSON or TOML) and go on")
    g.add_argument("--steps", type=int, metavar="N", help=f"optimizer steps ({d('steps', 'default 1000')})")
    g.add_argument("--batch", type=int, metavar="N", help=f"images per step and process ({d('batch', 'default 8')})")
    g.add_argument("--crop", type=int, metavar="N", help=f"training crop ({d('crop', 'default 473')})")
    g.add_argument("--lr", type=float, help=f"backbone learning rate ({d('lr', 'default 0.01')}; heads x --head-lr-mult)")
    g.add_argument("--head-lr-mult", type=float, metavar="X", help="heads' LR multiplier (default 10)")
    g.add_argument("--momentum", type=float, help="SGD momentum (default 0.9)")
    g.add_argument("--weight-decay", type=float, help="default 1e-4")
    g.add_argument("--power", type=float, help="poly LR power (default 0.9)")
    g.add_argument("--aux-weight", type=float, help="aux loss weight (default 0.4)")
    g.add_argument("--scale", type=float, nargs=2, metavar=("MIN", "MAX"), help=f"random scale ({d('scale', 'default 0.5 2.0')})")
    g.add_argument("--rotate", type=float, metavar="DEG", help=f"random rotation ({d('rotate', 'default 10')})")
    g.add_argument("--blur", type=float, metavar="P", help="Gaussian blur probability (default 0.5)")
    _flag(g, "--no-flip", "no random mirroring")
    g.add_argument("--seed", type=int, help="default 0")
    g.add_argument("--workers", type=int, metavar="N", help="data loader processes (default 0)")
    g.add_argument("--device", help="cpu, cuda, cuda:N (default: cuda when available)")
    g.add_argument("--amp", choices=["auto", "off", "bf16", "fp16"], help="mixed precision on CUDA (default auto)")
    g.add_argument("--channels-last", type=_on_off, metavar="on|off", help="channels_last on CUDA (default auto)")
    g.add_argument("--val-every", type=int, metavar="N", help=f"validate every N steps ({d('val_every', 'default: at the end')})")
    g.add_argument("--val-limit", type=int, metavar="N", help=f"validate on at most N images ({d('val_limit', 'default: all')})")
    g.add_argument("--checkpoint-every", type=int, metavar="N",
                   help="write a resume state every N steps (into --checkpoint-dir, default OUT's name + _checkpoints)")
    g.add_argument("--checkpoint-dir", metavar="DIR", help="folder for last.pt and final.safetensors")
    g.add_argument("--resume", metavar="LAST.pt", help="continue a run exactly from its resume state")
    _flag(g, "--sync-bn", "SyncBatchNorm under torchrun on CUDA")
    if finetune:  # on by default here: --freeze-backbone off trains the whole network
        g.add_argument("--freeze-backbone", type=_on_off, nargs="?", const=True, metavar="on|off",
                       help="train only the pyramid and the heads (default on)")
        g.add_argument("--cache-features", type=_on_off, nargs="?", const=True, metavar="on|off",
                       help="with the frozen backbone: compute it once per image, no augmentation (default on)")
    else:
        _flag(g, "--freeze-backbone", "train only the pyramid and the heads")
        _flag(g, "--cache-features", "with --freeze-backbone: compute the backbone once per image (no augmentation)")
    if finetune:
        g.add_argument("--val-fraction", type=float, metavar="F", help="images held out by name hash (default 0.2)")
    add_quiet(p)


# ------------------------------------------------------------------------------------------------ settings


def _read_settings(path: str | None) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(model table or None, train table) from a JSON / TOML file."""
    if not path:
        return None, {}
    import tomllib

    p = Path(path)
    text = p.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text) if p.suffix.lower() == ".toml" else json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{p}: not valid {'TOML' if p.suffix.lower() == '.toml' else 'JSON'}: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{p}: expected a table of settings, not {type(data).__name__}")
    data = dict(data)
    model = data.pop("model", None)
    train = data.pop("train", {})
    for name, table in (("model", model), ("train", train)):
        if table is not None and not isinstance(table, dict):
            raise ValueError(f"{p}: [{name}] must be a table of settings")
    clash = sorted(set(data) & set(train))
    if clash:
        raise ValueError(f"{p}: {', '.join(clash)} given both at the top level and in [train]")
    return model, {**data, **train}


def _given(args: argparse.Namespace, table: dict[str, str]) -> dict[str, Any]:
    """Fields set on the command line (options left out are None)."""
    out = {}
    for dest, name in table.items():
        v = getattr(args, dest, None)
        if v is None:
            continue
        out[name] = (not v) if dest in NEGATED else (tuple(v) if isinstance(v, list) else v)
    return out


def resume_settings(path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model config, training settings) a resume state was written with."""
    import torch

    from core.errors import CheckpointError

    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return json.loads(data["model_config"]), json.loads(data["train_config"])
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such resume state") from None
    except Exception as exc:  # noqa: BLE001 - not a torch file, truncated, not ours
        raise CheckpointError(f"{path}: not a PSPNet Studio training state (the last.pt that --checkpoint-every "
                              f"writes): {exc}") from None


def train_config(args: argparse.Namespace, file_train: dict[str, Any], base: dict[str, Any] | None = None) -> Any:
    """TrainConfig from ``base`` (e.g. a resumed run's), then the file, then the options."""
    from core.training import TrainConfig

    data = {**(base or {}), **file_train, **_given(args, TRAIN_OPTIONS)}
    if data.get("checkpoint_every") and not data.get("checkpoint_dir") and getattr(args, "out", None):
        out = Path(args.out)
        data["checkpoint_dir"] = str(out.with_name(out.stem + "_checkpoints"))
    try:
        return TrainConfig.from_dict(data)
    except TypeError as exc:
        raise ValueError(f"invalid training settings: {exc}") from None


def model_config(args: argparse.Namespace, file_model: dict[str, Any] | None, num_classes: int) -> Any:
    from core.config import ModelConfig

    data = dict(file_model or {})
    if "num_classes" in data and int(data["num_classes"]) != num_classes:
        raise ValueError(f"the settings file's model has num_classes={data['num_classes']} but the data set has "
                         f"{num_classes} classes")
    data.update(_given(args, MODEL_OPTIONS))
    data["num_classes"] = num_classes
    try:
        return ModelConfig.from_dict(data)
    except TypeError as exc:
        raise ValueError(f"invalid model settings: {exc}") from None


def _save_settings(path: str, model_cfg: Any, train_cfg: Any) -> None:
    import tomli_w

    from core.atomic import atomic_write_text
    from core.config import to_dict

    data = {"model": to_dict(model_cfg), "train": to_dict(train_cfg)}
    if Path(path).suffix.lower() == ".toml":
        text = tomli_w.dumps({k: {f: v for f, v in t.items() if v is not None} for k, t in data.items()})
    else:
        text = json.dumps(data, indent=2) + "\n"
    atomic_write_text(path, text)


# ------------------------------------------------------------------------------------------------ running


@contextlib.contextmanager
def _ctrl_c_cancels(cancel: threading.Event, main: bool) -> Iterator[None]:
    """The first Ctrl-C sets ``cancel`` (the run stops after its step); the second interrupts.

    Nothing changes off the main thread, nor when SIGINT is ignored: a shell starts background
    jobs of a script (``cmd &``) that way so that a Ctrl-C in the terminal leaves them running,
    and Python itself keeps it so (it installs no KeyboardInterrupt handler then)."""
    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    if ignored or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        if main:
            say("cancelling after this step (Ctrl-C again to stop at once)", err=True)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _fmt_eta(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"


def drive(gen: Any, cancel: threading.Event, steps: int, *, quiet: bool, main: bool) -> Any:
    """Run a training generator to its end with a progress bar (rank 0 only); returns its result, or
    when cancelled (``cancel`` is the event the generator was made with: Ctrl-C sets it) the
    partial result the generator raised :class:`Cancelled` with."""
    bar = progress(steps, "train", quiet=quiet or not main, unit="step")
    bar.bar_format = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"

    def show(rec: Any) -> None:
        if not hasattr(rec, "loss"):  # a stage of the job (core.Progress), not a training step
            if rec.message and main and not quiet:
                say(rec.message, err=True)
            return
        bar.set_postfix_str(f"loss {rec.loss:.4f}, lr {rec.lr:.2e}, {rec.images_per_s:.1f} img/s, "
                            f"eta {_fmt_eta(rec.eta_s)}", refresh=False)
        bar.update(max(0, rec.step - bar.n))
        if rec.message and rec.val is None and main:
            say(f"step {rec.step}: {rec.message}", err=True)
        if rec.val is not None and main and not quiet:
            say(f"step {rec.step}: validation mIoU {100 * rec.val.miou:.2f} %, pixel accuracy "
                f"{100 * rec.val.pixel_acc:.2f} %", err=True)

    try:
        with _ctrl_c_cancels(cancel, main):
            return run_to_end(gen, show)
    except Cancelled as exc:  # Ctrl-C: the weights of the last completed step (core/generators.py's rule)
        if exc.partial is None:
            raise
        return exc.partial
    finally:
        bar.close()


def _check_out(path: str) -> None:
    """Fail before hours of training, not after."""
    out = Path(path)
    if out.is_dir():
        raise ValueError(f"--out {out}: is a folder; give the checkpoint file's name (e.g. model.safetensors)")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"--out {out}: the folder {out.parent} does not exist")


def _report_load(report: Any, main: bool) -> None:
    if main:
        for line in report.summary().splitlines():
            say(f"  {line}", err=True)


def _finish(out: str | None, result: Any, classes: Any, provenance: dict[str, Any]) -> dict[str, Any]:
    """Save the trained model (when ``out``) and print what happened; returns the metrics dict."""
    metrics = result.metrics.to_dict(list(classes.names)) if result.metrics is not None else None
    losses = [r.loss for r in result.history if r.val is None]
    prov = {**provenance, "steps_done": result.steps_done, "cancelled": result.cancelled,
            "final_loss": losses[-1] if losses else None, "metrics": metrics}
    for note in result.notes:
        say(f"note: {note}", err=True)
    if out:
        from core.weights import save_checkpoint

        save_checkpoint(out, result.model, classes, prov)
    what = (f"cancelled at step {result.steps_done}; the weights of that step" if result.cancelled
            else f"{result.steps_done} steps")
    loss = f", final loss {losses[-1]:.4f}" if losses else ""
    m = result.metrics
    val = (f", validation mIoU {100 * m.miou:.2f} % (pixel accuracy {100 * m.pixel_acc:.2f} %)" if m is not None else "")
    print(f"{what}{loss}{val}" + (f"; saved {out}" if out else ""))
    return prov


def _configure_train(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data and output")
    g.add_argument("--data", required=True, metavar="DIR", help="data set folder (ours, VOC, ADE20K or Cityscapes)")
    g.add_argument("--layout", default="auto", help="auto (default), ours, voc, ade20k, cityscapes")
    g.add_argument("--remap", metavar="NAME|FILE", help="class remap applied to every mask (e.g. ade20k_to_25)")
    g.add_argument("--train-split", default="train", help="default train")
    g.add_argument("--val-split", default="val", help="default val ('none': no validation)")
    g.add_argument("--out", required=True, metavar="CKPT", help="where to save the trained model (.safetensors)")
    add_model_source(p, required=False, help="start from this checkpoint (any importable format) instead of a new "
                                             "model; its classifiers are new if its class count differs")
    _model_options(p)
    _train_options(p)


@command("train", "train a PSPNet on a data set folder (torchrun for several GPUs)", _configure_train)
def run_train(args: argparse.Namespace) -> int:
    from core.data.datasets import open_dataset
    from core.training import init_distributed, shutdown_distributed, train
    from core.weights import build_model, fetch_backbone_weights, load_backbone

    file_model, file_train = _read_settings(args.config)
    arch_options = sorted(f"--{d.replace('_', '-')}" for d in MODEL_OPTIONS if getattr(args, d, None) is not None)
    arch_options += ["--backbone-weights"] * bool(args.backbone_weights) + ["--imagenet"] * bool(args.imagenet)
    if args.model and (arch_options or file_model):
        raise ValueError(f"{', '.join(arch_options) or 'a [model] table in --config'} cannot be combined with --model: "
                         "the architecture comes from the checkpoint")
    if args.imagenet and args.backbone_weights:
        raise ValueError("give either --imagenet or --backbone-weights, not both")
    base = None
    if args.resume and not args.model and not arch_options and not file_model:
        # continue a run from its resume state alone: its architecture and settings, then file and options
        file_model, base = resume_settings(args.resume)
        base.pop("resume", None)
    cfg = train_config(args, file_train, base)
    _check_out(args.out)
    info = init_distributed(cfg.device)
    main = info.is_main
    try:
        train_set = open_dataset(args.data, args.train_split, layout=args.layout, remap=args.remap)
        if len(train_set) == 0:
            raise ValueError(f"{args.data}: the {args.train_split!r} split is empty")
        val_set = None
        if args.val_split != "none":
            val_set = open_dataset(args.data, args.val_split, layout=args.layout, remap=args.remap)
            val_set = val_set if len(val_set) else None
        classes = train_set.classes
        if args.model:
            from core.commands._common import load

            loaded = load(args.model, classes=classes)
            model, started = loaded.model, [str(s) for s in loaded.sources]
            if main:
                say(f"starting from {' + '.join(started)}:", err=True)
            _report_load(loaded.report, main)
        else:
            model, started = build_model(model_config(args, file_model, len(classes))), "new"
            weights = fetch_backbone_weights(f"resnet{model.cfg.depth}") if args.imagenet else args.backbone_weights
            if weights:
                if main:
                    say(f"backbone from {weights}:", err=True)
                _report_load(load_backbone(model, weights), main)
        if args.save_config and main:
            _save_settings(args.save_config, model.cfg, cfg)
        if main:
            mc = model.cfg
            say(f"training resnet{mc.depth} (width {mc.base_width}, bins {list(mc.bins) if mc.use_ppm else 'none'}, "
                f"{mc.num_classes} classes) on {len(train_set)} images of {args.data}"
                f"{f', validating on {len(val_set)}' if val_set else ''}: {cfg.steps} steps of {cfg.batch} x "
                f"{cfg.crop}px crops" + (f" on {info.world_size} processes" if info.distributed else ""), err=True)
        cancel = threading.Event()
        result = drive(train(model, train_set, val_set, cfg, cancel=cancel, classes=classes), cancel, cfg.steps,
                       quiet=args.quiet, main=main)
        if not main:
            return 0
        provenance = {"command": command_line(args), "data": str(Path(args.data).resolve()), "layout": train_set.layout,
                      "train_split": args.train_split, "train_images": len(train_set),
                      "val_images": len(val_set) if val_set else 0, "started_from": started,
                      "world_size": info.world_size, "train_config": cfg.to_dict()}
        _finish(args.out, result, classes, provenance)
        return 130 if result.cancelled else 0
    finally:
        shutdown_distributed()


def _configure_finetune(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("project and output")
    g.add_argument("--project", required=True, metavar="DIR", help="project folder (or a data set in our layout)")
    add_model_source(p, required=False, help="the model to fine-tune (default: the project's current model)")
    g.add_argument("--out", metavar="CKPT", help="save the fine-tuned model here")
    g.add_argument("--add-to-project", action="store_true",
                   help="add the fine-tuned model to the project's model history and make it current")
    g.add_argument("--note", default="", help="note for the project's model history")
    _train_options(p, finetune=True)


@command("finetune", "fine-tune a model on a project's painted masks", _configure_finetune)
def run_finetune(args: argparse.Namespace) -> int:
    """The same job as the app's Retrain (core.finetune_project): the same defaults, the same history record."""
    from core.jobs.finetune_project import finetune_config, finetune_project, history_metrics, record_finetune
    from core.project import Project
    from core.training import init_distributed, shutdown_distributed

    if not args.out and not args.add_to_project:
        raise ValueError("say where the fine-tuned model goes: --out CKPT and/or --add-to-project")
    file_model, file_train = _read_settings(args.config)
    if file_model:
        raise ValueError(f"{args.config}: fine-tuning keeps the model's architecture; remove the [model] table")
    settings = {**file_train, **_given(args, TRAIN_OPTIONS)}  # over core.FINETUNE_DEFAULTS
    if args.out:
        _check_out(args.out)
    info = init_distributed(settings.get("device"))
    main = info.is_main
    project = None
    try:
        # the project is written (locked) only by the process that adds the model; the others read
        project = Project.open(args.project, read_only=not (args.add_to_project and main))
        source = args.model
        if not source:
            current = project.current_checkpoint
            if current is None:
                raise ValueError(f"{args.project}: the project has no current model; give one with --model")
            source = [str(current.path)]
        classes = project.classes
        from core.commands._common import load

        loaded = load(source, classes=classes)
        if main:
            say(f"fine-tuning {' + '.join(str(s) for s in loaded.sources)}:", err=True)
        _report_load(loaded.report, main)
        pending = project.recoverable()
        if pending and main:
            say(f"note: {len(pending)} image(s) have unsaved edits in crash journals, which this run does not see "
                f"(open the project in the GUI to recover them): {', '.join(pending[:5])}", err=True)
        try:
            cfg, notes = finetune_config(project, loaded.model, settings)
        except TypeError as exc:
            raise ValueError(f"invalid training settings: {exc}") from None
        for note in notes:
            if main:
                say(f"note: {note}", err=True)
        if args.save_config and main:
            _save_settings(args.save_config, loaded.model.cfg, cfg)
        if main:
            say(f"{cfg.steps} steps of {cfg.batch} x {cfg.crop}px crops, lr {cfg.lr:g}, "
                f"{'frozen backbone' if cfg.freeze_backbone else 'whole network'}"
                f"{', cached features' if cfg.cache_features else ''}", err=True)
        cancel = threading.Event()
        note = args.note or ""
        done = drive(finetune_project(loaded, project, cfg, record=args.add_to_project and main, note=note,
                                      origin="command line", cancel=cancel), cancel, cfg.steps, quiet=args.quiet,
                     main=main)
        if not main:
            return 0
        result = done.train
        provenance = {"command": command_line(args), "project": str(project.root.resolve()),
                      "started_from": [str(s) for s in loaded.sources], "images": len(project.names()),
                      "world_size": info.world_size, "train_config": cfg.to_dict(), "finetune": True}
        _finish(args.out, result, classes, provenance)
        if args.add_to_project:
            entry = done.entry
            if entry is None:  # cancelled (Ctrl-C): the weights reached so far go into the history too
                metrics = history_metrics(result, cfg, done.seconds, "command line")
                entry, _ = record_finetune(project, loaded, result.model, metrics,
                                           note or f"fine-tuned {result.steps_done} steps from the command line "
                                                   "(cancelled)")
            print(f"added model {entry.id} to the project: {entry.path}")
        return 130 if result.cancelled else 0
    finally:
        if project is not None:
            project.close()
        shutdown_distributed()

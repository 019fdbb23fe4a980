"""Checkpoints: our own safetensors format, and importers of foreign ones.

- :func:`save_checkpoint` / :func:`load_model` (ours; bit-exact round trip)
- foreign formats, detected from their keys: semseg, CSAIL (encoder + decoder), mmsegmentation,
  torchvision ImageNet ResNets and semseg's deep-stem init (see :mod:`core.weights.formats`)
- :func:`fetch_backbone_weights`: torchvision's ImageNet files through torch.hub's cache

PyTorch files are only ever read with ``torch.load(..., weights_only=True)``; objects of classes
torch does not allow (an mmseg 1.x checkpoint's ``message_hub``) are read as inert data, and
nothing in a file is ever called (:mod:`core.weights.unpickle`).
"""

from core.weights.arch import build_model
from core.weights.fetch import fetch_backbone_weights
from core.weights.load import load_backbone, load_model
from core.weights.ours import save_checkpoint
from core.weights.report import LoadedModel, LoadReport

__all__ = ["LoadReport", "LoadedModel", "build_model", "save_checkpoint", "load_model", "load_backbone",
           "fetch_backbone_weights"]

"""The PSPNet model: backbone, pyramid pooling, heads."""

from core.model.backbone import ResNet, Stages
from core.model.heads import SegHead
from core.model.ppm import PyramidLevel, PyramidPooling
from core.model.pspnet import Internals, PSPNet, PSPNetOutput

__all__ = ["PSPNet", "PSPNetOutput", "Internals", "PyramidLevel", "PyramidPooling", "ResNet", "Stages", "SegHead"]

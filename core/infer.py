"""Inference (kept for imports of ``core.infer``): see :mod:`core.inference`."""

from core.inference import MULTI_SCALES, Prediction, Predictor, Preview, TestProtocol

__all__ = ["Predictor", "Prediction", "Preview", "TestProtocol", "MULTI_SCALES"]

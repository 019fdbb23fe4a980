"""Inference: the test protocol, the predictor, the prediction and the level switch.

- :mod:`.protocol`: :class:`TestProtocol`, each source's test procedure as data
- :mod:`.plan`: passes and windows of one prediction
- :mod:`.forward`: :class:`Network`, the one way the backbone stages and heads are run
- :mod:`.maps`, :mod:`.compose`, :mod:`.sampling`: the windows' sums, and the photo-sized
  results computed band by band from them
- :mod:`.prediction`: :class:`Prediction` (labels at full size, maps at working resolution)
- :mod:`.predictor`: :class:`Predictor`; :mod:`.switch`: :class:`LevelSwitch`
- :mod:`.memory`: the memory estimate, what is available, the errors
"""

from core.inference.memory import (MemoryEstimate, PredictionError, PredictionOutOfMemory, PredictionTooLarge,
                                   available_memory)
from core.inference.prediction import PhotoProbs, Prediction, Preview
from core.inference.predictor import Predictor
from core.inference.protocol import MULTI_SCALES, TestProtocol
from core.inference.switch import LevelSwitch

__all__ = ["TestProtocol", "MULTI_SCALES", "Predictor", "Prediction", "PhotoProbs", "Preview", "LevelSwitch",
           "MemoryEstimate", "PredictionError", "PredictionTooLarge", "PredictionOutOfMemory", "available_memory"]

"""The learning core (numpy only): the softmax head, its training, and the .tflite writer."""

from __future__ import annotations

from kiosk.learn.softmax import SoftmaxRegression
from kiosk.learn.training import (
    DEFAULT_TRAINING,
    PYCORAL_TRAINING,
    TrainingConfig,
    TrainingProgress,
    TrainingResult,
)

__all__ = [
    "DEFAULT_TRAINING",
    "PYCORAL_TRAINING",
    "SoftmaxRegression",
    "TrainingConfig",
    "TrainingProgress",
    "TrainingResult",
]

"""Callbacks: the base class, the defaults every fit uses, and the built-ins."""

from __future__ import annotations

from luzwidget.callbacks.checkpoint import KeepBestModel, ModelCheckpoint
from luzwidget.callbacks.defaults import Interrupt, Metrics, Profile, TrainValid
from luzwidget.callbacks.early_stopping import EarlyStopping
from luzwidget.callbacks.loggers import CSVLogger, TensorBoard
from luzwidget.callbacks.mixup import Mixup, MixupLoss
from luzwidget.callbacks.progress import Progress
from luzwidget.callbacks.resume import AutoResume, ResumeFromCheckpoint
from luzwidget.callbacks.schedulers import LRScheduler
from luzwidget.callbacks.serve import Serve
from luzwidget.callbacks.training import GradientClip, MixedPrecision
from luzwidget.core.callback import Callback

__all__ = [
    "AutoResume",
    "CSVLogger",
    "Callback",
    "EarlyStopping",
    "GradientClip",
    "Interrupt",
    "KeepBestModel",
    "LRScheduler",
    "Metrics",
    "MixedPrecision",
    "Mixup",
    "MixupLoss",
    "ModelCheckpoint",
    "Profile",
    "Progress",
    "ResumeFromCheckpoint",
    "Serve",
    "TensorBoard",
    "TrainValid",
]

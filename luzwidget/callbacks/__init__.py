"""Callbacks: the base class, the defaults every fit uses, and the built-ins."""

from __future__ import annotations

from luzwidget.callbacks.base import Callback
from luzwidget.callbacks.defaults import Interrupt, Metrics, Profile, TrainValid
from luzwidget.callbacks.progress import Progress

__all__ = ["Callback", "Interrupt", "Metrics", "Profile", "Progress", "TrainValid"]

"""Metrics: the protocol, ``metric_set`` and the built-ins (luz's ``luz_metric_*``).

Any object with ``update(pred, target)`` and ``compute()`` is a metric, so torchmetrics
metrics work as they are.
"""

from __future__ import annotations

from luzwidget.metrics.auroc import BinaryAUROC, MulticlassAUROC
from luzwidget.metrics.base import LossAverage, Metric, MetricSet, metric_set
from luzwidget.metrics.classification import Accuracy, BinaryAccuracy, BinaryAccuracyWithLogits
from luzwidget.metrics.regression import MAE, MSE, RMSE

__all__ = [
    "MAE",
    "MSE",
    "RMSE",
    "Accuracy",
    "BinaryAUROC",
    "BinaryAccuracy",
    "BinaryAccuracyWithLogits",
    "LossAverage",
    "Metric",
    "MetricSet",
    "MulticlassAUROC",
    "metric_set",
]

"""Metrics: the protocol, ``metric_set`` and the built-ins (luz's ``luz_metric_*``).

Any object with ``update(pred, target)`` and ``compute()`` is a metric, so torchmetrics
metrics work as they are. Each metric is logged under its abbreviation, or under a name of
your choice: ``name=`` on the built-ins, or a ``(name, metric)`` pair in ``metrics=`` for any
metric (``metrics=[Accuracy(), ("auc_tm", torchmetrics_auroc)]``). Two metrics with one
abbreviation are both logged, the later one with a suffix: ``"acc"``, ``"acc_2"``, ...
(see :mod:`luzwidget.metrics.names`).
"""

from __future__ import annotations

from luzwidget.metrics.auroc import BinaryAUROC, MulticlassAUROC
from luzwidget.metrics.base import LossAverage, Metric, MetricSet, metric_set
from luzwidget.metrics.classification import Accuracy, BinaryAccuracy, BinaryAccuracyWithLogits
from luzwidget.metrics.names import MetricError
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
    "MetricError",
    "MetricSet",
    "MulticlassAUROC",
    "metric_set",
]

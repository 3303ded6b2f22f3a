"""The metric protocol, the loss average every run logs first, and ``metric_set``."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch

from luzwidget.exceptions import ConfigError

__all__ = ["LossAverage", "Metric", "MetricLike", "MetricSet", "abbrev_of", "check_metric", "metric_set"]


@runtime_checkable
class MetricLike(Protocol):
    """What the loop needs of a metric: ``update``, ``compute`` (and optionally ``reset``, ``to``).

    Any ``torchmetrics.Metric`` instance has this shape and can be used as is.
    """

    def update(self, pred: Any, target: Any) -> None: ...

    def compute(self) -> Any: ...


class Metric:
    """Base class of luzwidget's metrics.

    A metric accumulates over the batches of one epoch of one mode (train or valid) and is
    computed once, at ``on_train_end`` / ``on_valid_end``. The loop works on a fresh copy of
    the metric you pass for each mode and epoch, so ``__init__`` only stores options.
    Accumulate on the device (tensors, no ``.item()``) so ``update`` never waits for the
    accelerator; convert to a Python number in ``compute``.

    Attributes
    ----------
    abbrev : str
        Short lower-case name used in records and monitors (``"acc"`` -> ``"valid_acc"``).
    """

    abbrev: str = "metric"

    def reset(self) -> None:
        """Forget everything accumulated so far."""

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Accumulate one batch."""
        raise NotImplementedError

    def compute(self) -> Any:
        """Return the value over everything accumulated since the last reset."""
        raise NotImplementedError

    def to(self, device: torch.device | str) -> Metric:
        """Move accumulated state to ``device``; returns ``self``."""
        for name, value in vars(self).items():
            if isinstance(value, torch.Tensor):
                setattr(self, name, value.to(device))
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class LossAverage(Metric):
    """Mean of the loss over the epoch, weighted by batch size; logged as ``"loss"``.

    Sums on the device, so no batch forces a host sync; one ``.item()`` per epoch.
    """

    abbrev = "loss"

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.total: torch.Tensor | None = None
        self.count = 0

    def update(self, pred: Any, target: Any) -> None:  # pragma: no cover - not used by the loop
        raise TypeError("LossAverage is updated by the loop with update_loss(loss, n).")

    def update_loss(self, loss: torch.Tensor, n: int) -> None:
        """Add a batch's (mean) loss ``loss`` over ``n`` samples."""
        if self.total is None:
            self.total = loss.detach() * n
        else:
            self.total.add_(loss.detach(), alpha=n)
        self.count += n

    def compute(self) -> float:
        if self.total is None or self.count == 0:
            return float("nan")
        return self.total.item() / self.count


def abbrev_of(metric: Any) -> str:
    """The records name of ``metric``: its ``abbrev``, else its class name in lower case."""
    name = getattr(metric, "abbrev", None)
    return name if isinstance(name, str) and name else type(metric).__name__.lower()


def check_metric(metric: Any, argument: str = "metrics") -> Any:
    """Return ``metric`` if it has ``update`` and ``compute``; else raise ConfigError."""
    if isinstance(metric, type):
        raise ConfigError(
            f"{argument}: got the class {metric.__name__}, expected an instance; "
            f"write {metric.__name__}() instead."
        )
    missing = [m for m in ("update", "compute") if not callable(getattr(metric, m, None))]
    if missing:
        raise ConfigError(
            f"{argument}: {metric!r} is not a metric: it has no {' or '.join(missing)}() method. "
            "A metric needs update(pred, target) and compute() (see luzwidget.metrics.Metric); "
            "torchmetrics metrics work too."
        )
    return metric


def fresh(metric: Any) -> Any:
    """A new, reset copy of ``metric`` for one mode of one epoch."""
    new = copy.deepcopy(metric)
    reset = getattr(new, "reset", None)
    if callable(reset):
        reset()
    return new


@dataclass
class MetricSet:
    """Metrics for both modes, plus ones only for training or only for validation."""

    metrics: list[Any] = field(default_factory=list)
    train_metrics: list[Any] = field(default_factory=list)
    valid_metrics: list[Any] = field(default_factory=list)

    def for_mode(self, mode: str) -> list[Any]:
        """The metrics used in ``mode`` ("train" or "valid")."""
        extra = self.train_metrics if mode == "train" else self.valid_metrics
        return [*self.metrics, *extra]


def _as_list(value: Any, argument: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, Sequence | Iterable) and not isinstance(value, str | torch.nn.Module):
        items = list(value)
    else:
        items = [value]
    return [check_metric(m, argument) for m in items]


def metric_set(
    metrics: Any = None, train_metrics: Any = None, valid_metrics: Any = None
) -> MetricSet:
    """Group metrics by mode, as luz's ``luz_metric_set``.

    Parameters
    ----------
    metrics
        Metrics computed in training and validation.
    train_metrics, valid_metrics
        Metrics computed only in that mode.
    """
    if isinstance(metrics, MetricSet):
        return metrics
    return MetricSet(
        _as_list(metrics, "metrics"),
        _as_list(train_metrics, "train_metrics"),
        _as_list(valid_metrics, "valid_metrics"),
    )

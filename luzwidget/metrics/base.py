"""The metric protocol, the loss average every run logs first, and ``metric_set``."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from luzwidget.core.exceptions import ConfigError
from luzwidget.metrics.names import check_name, unique_names
from luzwidget.metrics.sums import FOLD_EVERY, DeviceSum, widen

__all__ = [
    "DeviceSum",
    "LossAverage",
    "Metric",
    "MetricSet",
    "abbrev_of",
    "check_metric",
    "fresh",
    "given_name",
    "metric_set",
]


class Metric:
    """Base class of luzwidget's metrics.

    A metric accumulates over the batches of one epoch of one mode (train or valid) and is
    computed once, at ``on_train_end`` / ``on_valid_end``. The loop works on a fresh copy of
    the metric you pass for each mode and epoch (see :func:`fresh`), so ``__init__`` only
    stores options and ``reset`` sets up the state. Accumulate on the device (tensors, no
    ``.item()``) so ``update`` never waits for the accelerator; convert to a Python number
    in ``compute``. The built-ins return NaN from ``compute`` before any ``update``.

    Attributes
    ----------
    abbrev : str
        Short name used in records and monitors (``"acc"`` -> ``"valid_acc"``), lower-cased
        when logged; empty (the default) means the class name in lower case. Two metrics
        with one abbreviation are both logged, the later one as ``"acc_2"`` (see
        :mod:`luzwidget.metrics.names`).
    name : str or None
        The records name given with ``name=`` (None, the default: the abbreviation).

    Examples
    --------
    >>> class Count(Metric):
    ...     abbrev = "n"
    ...     def reset(self) -> None:
    ...         self.n = 0
    ...     def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
    ...         self.n += len(target)
    ...     def compute(self) -> float:
    ...         return float(self.n)
    >>> m = fresh(Count())
    >>> m.update(torch.zeros(3), torch.zeros(3))
    >>> m.compute()
    3.0
    """

    abbrev: ClassVar[str] = ""
    name: str | None = None

    def __init__(self, *, name: str | None = None) -> None:
        self.name = None if name is None else check_name(name, type(self).__name__)

    def reset(self) -> None:
        """Forget everything accumulated so far."""

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Accumulate one batch."""
        raise NotImplementedError

    def compute(self) -> Any:
        """Return the value over everything accumulated since the last reset."""
        raise NotImplementedError

    def to(self, device: torch.device | str) -> Metric:
        """Move the state (tensors, :class:`DeviceSum`) to ``device``; returns ``self``."""
        for name, value in vars(self).items():
            if isinstance(value, torch.Tensor):
                setattr(self, name, value.to(device))
            elif isinstance(value, DeviceSum):
                value.to(device)
        return self

    def __repr__(self) -> str:
        return self._repr()

    def _repr(self, **options: Any) -> str:
        """``Class(option=value, ..., name='...')``, the name only when one was given."""
        if self.name is not None:
            options["name"] = self.name
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in options.items())})"


class LossAverage(Metric):
    """Mean of the loss over the epoch, weighted by batch size; logged as ``"loss"``.

    ``update_loss`` only appends the detached loss to a list (under 1 µs on CPU, no host
    sync, no in-place add); a batch whose size differs from the first's (a short last
    batch) is first scaled by the ratio of sizes. ``compute`` stacks and sums the list
    in float64 with one ``.item()``; every ``FOLD_EVERY`` batches the list is folded into
    one partial sum on the device so it stays short. NaN before the first batch.

    luz averages the batch losses without weights; the two differ only through a short
    last batch.

    Examples
    --------
    >>> m = LossAverage()
    >>> m.update_loss(torch.tensor(1.0), 3)
    >>> m.update_loss(torch.tensor(3.0), 1)
    >>> m.compute()
    1.5
    """

    abbrev = "loss"

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.losses: list[torch.Tensor] = []  # each weighted by size / self.size
        self.partial: torch.Tensor | None = None  # float64 sum of the losses folded so far
        self.size = 0  # the first batch's size: the unit the losses are weighted in
        self.count = 0
        self.bad: list[torch.Tensor] = []  # per fold, on the device: its first non-finite loss

    def update(self, pred: Any, target: Any) -> None:
        raise TypeError("LossAverage is updated by the loop with update_loss(loss, n).")

    def update_loss(self, loss: torch.Tensor | float, n: int) -> None:
        """Add a batch's (mean) loss ``loss``, a one-element tensor, over ``n`` samples."""
        if type(loss) is not torch.Tensor:
            loss = torch.as_tensor(loss)
        size = self.size
        if n != size or not size:
            if n <= 0:
                return
            if size == 0:
                self.size = n
            else:
                loss = loss * (n / size)
        self.losses.append(loss.detach() if loss.requires_grad else loss)  # ctx.loss is detached
        self.count += n
        if len(self.losses) >= FOLD_EVERY:
            self.bad.append(_first_nonfinite(self.losses))  # no sync; read if the mean is NaN
            self.partial = self._sum()
            self.losses = []

    def first_nonfinite(self) -> int | None:
        """Which loss added (0-based) was the first NaN or inf, or None; syncs once per fold."""
        for k, first in enumerate([*self.bad, _first_nonfinite(self.losses)]):
            position = int(first)
            if position < FOLD_EVERY:
                return k * FOLD_EVERY + position
        return None

    def _sum(self) -> torch.Tensor | None:
        """Sum of the (weighted) losses so far, on their device, in float64."""
        total = self.partial
        if self.losses:
            chunk = widen(torch.stack(self.losses)).sum()
            total = chunk if total is None else total + chunk
        return total

    def compute(self) -> float:
        """The weighted mean loss; NaN before the first batch."""
        total = self._sum()
        if total is None or self.count == 0:
            return float("nan")
        return total.item() * self.size / self.count

    def to(self, device: torch.device | str) -> LossAverage:
        self.losses = [loss.to(device) for loss in self.losses]
        self.bad = [first.to(device) for first in self.bad]
        if self.partial is not None:
            self.partial = self.partial.to(device)
        return self


def _first_nonfinite(losses: list[torch.Tensor]) -> torch.Tensor:
    """The index of the first non-finite of ``losses`` (``FOLD_EVERY`` if none), on the device."""
    if not losses:
        return torch.tensor(FOLD_EVERY)
    finite = torch.isfinite(torch.stack(losses))
    where = torch.arange(len(losses), device=finite.device)
    return torch.where(finite, FOLD_EVERY, where).min()


def given_name(metric: Any) -> str | None:
    """The records name given to a luzwidget :class:`Metric` with ``name=``, else None."""
    name = getattr(metric, "name", None) if isinstance(metric, Metric) else None
    return name if isinstance(name, str) else None


def abbrev_of(metric: Any) -> str:
    """The abbreviation of ``metric``: its ``abbrev`` in lower case, else its class name.

    It is the records name unless the metric was named or another metric has it first
    (see :meth:`MetricSet.named`).

    Examples
    --------
    >>> from luzwidget.metrics import Accuracy
    >>> abbrev_of(Accuracy()), abbrev_of(object())
    ('acc', 'object')
    """
    name = getattr(metric, "abbrev", None)
    return (name if isinstance(name, str) and name else type(metric).__name__).lower()


def _missing_methods(metric: Any) -> list[str]:
    """The names among update/compute that ``metric`` lacks or leaves to ``Metric``."""
    missing = []
    for method in ("update", "compute"):
        bound = getattr(metric, method, None)
        inherited = isinstance(metric, Metric) and getattr(type(metric), method) is getattr(
            Metric, method
        )
        if not callable(bound) or inherited:
            missing.append(method)
    return missing


def _takes_pred_target(method: Any) -> bool:
    """Whether ``method(pred, target)`` binds (True when the signature is unknown)."""
    try:
        inspect.signature(method).bind(None, None)
    except TypeError:
        return False
    except ValueError:  # no signature (a builtin): trust it
        return True
    return True


def check_metric(metric: Any, argument: str = "metrics") -> Any:
    """Return ``metric`` if it can be used as a metric; else raise ConfigError.

    A metric is an instance with ``update(pred, target)`` and ``compute()``; subclasses of
    :class:`Metric` must override both.
    """
    if isinstance(metric, type):
        raise ConfigError(
            f"{argument}: got the class {metric.__name__}, expected an instance; "
            f"write {metric.__name__}() instead."
        )
    missing = _missing_methods(metric)
    if missing:
        names = " or ".join(f"{m}()" for m in missing)
        raise ConfigError(
            f"{argument}: {metric!r} is not a metric: it has no {names} method of its own."
            " A metric needs update(pred, target) and compute() (see "
            "luzwidget.metrics.Metric); torchmetrics metrics work too."
        )
    if not _takes_pred_target(metric.update):
        raise ConfigError(
            f"{argument}: {type(metric).__name__}.update{inspect.signature(metric.update)} "
            "cannot be called as update(pred, target); give it two parameters, the "
            "batch's predictions and targets."
        )
    return metric


def fresh(metric: Any) -> Any:
    """A new, reset copy of ``metric`` for one mode of one epoch.

    A deep copy, so the copy shares no state with ``metric``; ``reset()`` is called on it
    when it has one.
    """
    new = copy.deepcopy(metric)
    reset = getattr(new, "reset", None)
    if callable(reset):
        reset()
    return new


def _is_named(entry: Any) -> bool:
    """Whether ``entry`` is a ``(name, metric)`` pair."""
    return isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], str)


@dataclass
class MetricSet:
    """Metrics for both modes, plus ones only for training or only for validation.

    Each entry is a metric or a ``(name, metric)`` pair that names it in the records.
    """

    metrics: list[Any] = field(default_factory=list)
    train_metrics: list[Any] = field(default_factory=list)
    valid_metrics: list[Any] = field(default_factory=list)

    def _entries(self, mode: str) -> list[tuple[str | None, Any]]:
        extra = self.train_metrics if mode == "train" else self.valid_metrics
        pairs = [e if _is_named(e) else (None, e) for e in [*self.metrics, *extra]]
        return [(name if name is not None else given_name(m), m) for name, m in pairs]

    def for_mode(self, mode: str) -> list[Any]:
        """The metrics used in ``mode`` ("train" or "valid")."""
        return [metric for _, metric in self._entries(mode)]

    def named(self, mode: str, reserved: Iterable[str] = ("loss",)) -> list[tuple[str, Any]]:
        """``(records name, metric)`` for each metric of ``mode``, every name unique.

        ``reserved`` are the loss's names; see :mod:`luzwidget.metrics.names` for the rule.

        Examples
        --------
        >>> from luzwidget.metrics import Accuracy, BinaryAUROC, BinaryAccuracy
        >>> ms = metric_set([Accuracy(), BinaryAccuracy(), ("auc_p", BinaryAUROC())])
        >>> [name for name, _ in ms.named("train")]
        ['acc', 'acc_2', 'auc_p']
        """
        entries = self._entries(mode)
        names = unique_names(
            [(given, abbrev_of(m), type(m).__name__) for given, m in entries], reserved
        )
        return [(name, metric) for name, (_, metric) in zip(names, entries, strict=True)]


def _as_list(value: Any, argument: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, MetricSet):
        raise ConfigError(
            f"{argument}: got a MetricSet; pass it as metrics=, alone, or pass lists of metrics."
        )
    if _is_named(value):
        items = [value]
    elif isinstance(value, Iterable) and not isinstance(
        value, str | dict | torch.Tensor | torch.nn.Module
    ):
        items = list(value)
    else:
        items = [value]
    return [_check_entry(m, argument) for m in items]


def _check_entry(entry: Any, argument: str) -> Any:
    """``entry`` if it is a metric or a ``(name, metric)`` pair; else raise ConfigError."""
    if _is_named(entry):
        return (check_name(entry[0], argument), check_metric(entry[1], argument))
    return check_metric(entry, argument)


def metric_set(
    metrics: Any = None, train_metrics: Any = None, valid_metrics: Any = None
) -> MetricSet:
    """Group metrics by mode, as luz's ``luz_metric_set``.

    Parameters
    ----------
    metrics
        A metric or a list of metrics computed in training and validation; or a
        :class:`MetricSet`, returned as is. Each metric may be given as a ``(name,
        metric)`` pair to choose its records name (any metric, torchmetrics' too); the
        built-ins also take ``name=``. Unnamed metrics are logged under their
        abbreviation, made unique with ``_2``, ``_3``, ... (see
        :mod:`luzwidget.metrics.names`).
    train_metrics, valid_metrics
        Metrics computed only in that mode.

    Raises
    ------
    ConfigError
        If an entry is not a metric, or a given name is ``"loss"`` or already in use.

    Examples
    --------
    >>> from luzwidget.metrics import MAE, MSE
    >>> ms = metric_set([MAE()], valid_metrics=MSE())
    >>> ms.for_mode("train"), ms.for_mode("valid")
    ([MAE()], [MAE(), MSE()])
    """
    if isinstance(metrics, MetricSet):
        if train_metrics is not None or valid_metrics is not None:
            raise ConfigError(
                "metric_set: metrics is already a MetricSet, so train_metrics and "
                "valid_metrics would be ignored; add them to that MetricSet instead."
            )
        return metrics
    chosen = MetricSet(
        _as_list(metrics, "metrics"),
        _as_list(train_metrics, "train_metrics"),
        _as_list(valid_metrics, "valid_metrics"),
    )
    chosen.named("train"), chosen.named("valid")  # a clash of given names is an error now
    return chosen

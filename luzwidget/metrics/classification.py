"""Accuracy metrics: ``Accuracy``, ``BinaryAccuracy`` and ``BinaryAccuracyWithLogits``.

Also holds the argument checks the AUROC metrics share.
"""

from __future__ import annotations

import math
from numbers import Real

import torch

from luzwidget.core.exceptions import ConfigError
from luzwidget.metrics.base import DeviceSum, Metric

__all__ = ["Accuracy", "BinaryAccuracy", "BinaryAccuracyWithLogits"]


def check_unit_interval(value: object, argument: str, owner: str) -> float:
    """Return ``value`` as a float if it is a number in [0, 1]; else raise ConfigError."""
    if not isinstance(value, Real) or isinstance(value, bool) or not 0 <= float(value) <= 1:
        raise ConfigError(
            f"{owner}: {argument} must be a number in [0, 1], got {value!r}; "
            f"for example {owner}({argument}=0.5)."
        )
    return float(value)


def check_flag(value: object, argument: str, owner: str) -> bool:
    """Return ``value`` if it is a bool; else raise ConfigError."""
    if not isinstance(value, bool):
        raise ConfigError(f"{owner}: {argument} must be True or False, got {value!r}.")
    return value


def check_same_size(pred: torch.Tensor, target: torch.Tensor, owner: str) -> None:
    """Raise ValueError unless ``pred`` and ``target`` have as many elements."""
    if pred.numel() != target.numel():
        raise ValueError(
            f"{owner}: pred has shape {tuple(pred.shape)} and target has shape "
            f"{tuple(target.shape)}; they need the same number of elements (one prediction "
            "per target)."
        )


def _as_indices(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted class indices (argmax over dim 1 of float scores) and ``target``, same shape."""
    if pred.is_floating_point():
        if pred.dim() < 2:
            raise ValueError(
                f"Accuracy: pred has shape {tuple(pred.shape)} ({pred.dtype}); expected (N, C) "
                "class scores, or integer class indices. For probabilities of 0/1 targets use "
                "BinaryAccuracy, for logits BinaryAccuracyWithLogits."
            )
        if pred.shape[1] == 1:
            raise ValueError(
                f"Accuracy: pred has shape {tuple(pred.shape)}, one score per sample, so its "
                "argmax is always class 0. For a single probability or logit per sample use "
                "BinaryAccuracy or BinaryAccuracyWithLogits."
            )
        pred = pred.argmax(1)
    if pred.shape != target.shape:
        check_same_size(pred, target, "Accuracy")
        target = target.reshape(pred.shape)
    return pred, target


class _Fraction(Metric):
    """Fraction of correct predictions: a device count of hits over a host count of samples."""

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.reset()

    def reset(self) -> None:
        self.correct = DeviceSum()
        self.count = 0

    def _add(self, hits: torch.Tensor) -> None:
        """Count the True elements of ``hits`` (one per sample) without a host sync."""
        self.correct.add(hits.count_nonzero())
        self.count += hits.numel()

    def compute(self) -> float:
        """The fraction correct; NaN before the first ``update``."""
        correct = self.correct.total()
        if correct is None or self.count == 0:
            return math.nan
        return correct.item() / self.count


class Accuracy(_Fraction):
    """Fraction of samples whose highest-scoring class is the target; logged as ``"acc"``.

    ``pred`` holds float scores, probabilities or logits of shape (N, C) (or (N, C, ...)
    with target (N, ...)); ``target`` holds class indices, shaped (N,) or (N, 1). ``pred``
    may also be integer class indices, one per target. NaN before the first ``update``.

    Parameters
    ----------
    name
        The records name (default: ``"acc"``, made unique if another metric has it).

    Examples
    --------
    >>> m = Accuracy()
    >>> m.update(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 1]))
    >>> m.compute()
    0.5
    """

    abbrev = "acc"

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        pred, target = _as_indices(pred, target)
        self._add(torch.eq(pred, target))


class BinaryAccuracy(_Fraction):
    """Fraction of samples with ``(pred > threshold) == (target != 0)``; logged as ``"acc"``.

    ``pred`` holds probabilities; ``pred`` and ``target`` are flattened, so (N,), (N, 1)
    and any mix of the two work. Any non-zero target counts as positive. The abbreviation
    is luz's: all three accuracies log as ``"acc"``. NaN before the first ``update``.

    Parameters
    ----------
    threshold
        Probability above which a prediction counts as positive, in [0, 1]; checked again
        whenever it is assigned.
    name
        The records name (default: ``"acc"``, made unique if another metric has it).

    Examples
    --------
    >>> m = BinaryAccuracy()
    >>> m.update(torch.tensor([0.2, 0.7, 0.9]), torch.tensor([0.0, 1.0, 0.0]))
    >>> round(m.compute(), 4)
    0.6667
    """

    abbrev = "acc"

    def __init__(self, threshold: float = 0.5, *, name: str | None = None) -> None:
        self.threshold = threshold
        super().__init__(name=name)

    @property
    def threshold(self) -> float:
        """Probability above which a prediction counts as positive (float in [0, 1], 0.5)."""
        return self._threshold

    @threshold.setter
    def threshold(self, value: float) -> None:
        self._threshold = check_unit_interval(value, "threshold", type(self).__name__)
        self._cut = self._cut_for(self._threshold)

    def _cut_for(self, threshold: float) -> float:
        """The value ``pred`` is compared with."""
        return threshold

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        if pred.shape != target.shape:
            check_same_size(pred, target, type(self).__name__)
            pred, target = pred.reshape(-1), target.reshape(-1)
        self._add(torch.eq(pred > self._cut, target.bool()))

    def __repr__(self) -> str:
        return self._repr(threshold=self.threshold)


def logit(p: float) -> float:
    """``log(p / (1 - p))``, with -inf at 0 and inf at 1.

    Examples
    --------
    >>> logit(0.5), logit(0.0), logit(1.0)
    (0.0, -inf, inf)
    """
    if p <= 0:
        return -math.inf
    if p >= 1:
        return math.inf
    return math.log(p / (1 - p))


class BinaryAccuracyWithLogits(BinaryAccuracy):
    """``BinaryAccuracy`` for logits: ``sigmoid(pred) > threshold``; logged as ``"acc"``.

    Compares ``pred`` with ``logit(threshold)`` instead of applying the sigmoid, which is
    the same test, one operation cheaper and exact where the sigmoid saturates.

    Parameters
    ----------
    threshold
        Probability above which a prediction counts as positive, in [0, 1].
    name
        The records name (default: ``"acc"``, made unique if another metric has it).

    Examples
    --------
    >>> m = BinaryAccuracyWithLogits()
    >>> m.update(torch.tensor([-2.0, 0.5, 3.0]), torch.tensor([0, 1, 0]))
    >>> round(m.compute(), 4)
    0.6667
    """

    def _cut_for(self, threshold: float) -> float:
        return logit(threshold)

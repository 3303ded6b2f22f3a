"""Accuracy metrics: ``Accuracy``, ``BinaryAccuracy`` and ``BinaryAccuracyWithLogits``.

Also holds the argument checks the AUROC metrics share.
"""

from __future__ import annotations

import math
from numbers import Real

import torch

from luzwidget.exceptions import ConfigError
from luzwidget.metrics.base import Metric

__all__ = ["Accuracy", "BinaryAccuracy", "BinaryAccuracyWithLogits"]


def check_unit_interval(value: object, argument: str, owner: str) -> float:
    """Return ``value`` as a float if it is a number in [0, 1]; else raise ConfigError."""
    ok = isinstance(value, Real) and not isinstance(value, bool) and 0 <= float(value) <= 1
    if not ok:
        raise ConfigError(
            f"{owner}: {argument} must be a number in [0, 1], got {value!r}; "
            f"for example {owner}({argument}=0.5)."
        )
    return float(value)  # type: ignore[arg-type]


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
        pred = pred.argmax(1)
    if pred.shape != target.shape:
        check_same_size(pred, target, "Accuracy")
        target = target.reshape(pred.shape)
    return pred, target


class Accuracy(Metric):
    """Fraction of samples whose highest-scoring class is the target; logged as ``"acc"``.

    ``pred`` holds float scores or logits of shape (N, C) (or (N, C, ...) with target
    (N, ...)); ``target`` holds class indices. ``pred`` may also be integer class indices
    with one per target.

    Examples
    --------
    >>> m = Accuracy()
    >>> m.update(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 1]))
    >>> m.compute()
    0.5
    """

    abbrev = "acc"

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.correct: torch.Tensor | None = None
        self.count = 0

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        pred, target = _as_indices(pred, target)
        correct = (pred == target).sum()
        if self.correct is None:
            self.correct = correct
        else:
            self.correct.add_(correct)
        self.count += target.numel()

    def compute(self) -> float:
        if self.correct is None or self.count == 0:
            return math.nan
        return self.correct.item() / self.count


class BinaryAccuracy(Metric):
    """Fraction of samples with ``(pred > threshold) == (target != 0)``; logged as ``"binary_acc"``.

    ``pred`` holds probabilities; ``pred`` and ``target`` are flattened, so (N,), (N, 1)
    and any mix of the two work.

    Parameters
    ----------
    threshold
        Probability above which a prediction counts as positive, in [0, 1].

    Examples
    --------
    >>> m = BinaryAccuracy()
    >>> m.update(torch.tensor([0.2, 0.7, 0.9]), torch.tensor([0.0, 1.0, 0.0]))
    >>> round(m.compute(), 4)
    0.6667
    """

    abbrev = "binary_acc"

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = check_unit_interval(threshold, "threshold", type(self).__name__)
        self.reset()

    def _cut(self) -> float:
        """The value ``pred`` is compared with."""
        return self.threshold

    def reset(self) -> None:
        self.correct: torch.Tensor | None = None
        self.count = 0

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        if pred.shape != target.shape:
            check_same_size(pred, target, type(self).__name__)
            pred, target = pred.reshape(-1), target.reshape(-1)
        correct = ((pred > self._cut()) == target.bool()).sum()
        if self.correct is None:
            self.correct = correct
        else:
            self.correct.add_(correct)
        self.count += target.numel()

    def compute(self) -> float:
        if self.correct is None or self.count == 0:
            return math.nan
        return self.correct.item() / self.count

    def __repr__(self) -> str:
        return f"{type(self).__name__}(threshold={self.threshold!r})"


def logit(p: float) -> float:
    """``log(p / (1 - p))``, with -inf at 0 and inf at 1."""
    if p <= 0:
        return -math.inf
    if p >= 1:
        return math.inf
    return math.log(p / (1 - p))


class BinaryAccuracyWithLogits(BinaryAccuracy):
    """``BinaryAccuracy`` for logits: ``sigmoid(pred) > threshold``; logged as ``"binary_acc"``.

    Compares ``pred`` with ``logit(threshold)`` instead of applying the sigmoid, which is
    the same test, one operation cheaper and exact where the sigmoid saturates.

    Parameters
    ----------
    threshold
        Probability above which a prediction counts as positive, in [0, 1].

    Examples
    --------
    >>> m = BinaryAccuracyWithLogits()
    >>> m.update(torch.tensor([-2.0, 0.5, 3.0]), torch.tensor([0, 1, 0]))
    >>> round(m.compute(), 4)
    0.6667
    """

    def _cut(self) -> float:
        return logit(self.threshold)

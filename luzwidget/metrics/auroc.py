"""Area under the ROC curve on a fixed grid of thresholds: ``BinaryAUROC``, ``MulticlassAUROC``.

As luz (and Keras), the AUROC is approximated without storing the epoch's predictions: each
batch adds to counts of positives and negatives per threshold bucket, and ``compute`` builds
the ROC curve at the thresholds ``linspace(0, 1, num_thresholds)`` (plus its end points (0, 0)
and (1, 1)) and integrates it with the trapezoid rule.

A prediction ``p`` falls in bucket ``k`` = the number of thresholds ``<= p``, so it counts as
positive at threshold ``j`` exactly when ``k > j``. One ``searchsorted`` and one ``index_add_``
per batch, and neither waits for the device.
"""

from __future__ import annotations

import math
from numbers import Integral
from typing import Literal

import torch

from luzwidget.exceptions import ConfigError
from luzwidget.metrics.base import Metric
from luzwidget.metrics.classification import check_flag, check_same_size

__all__ = ["BinaryAUROC", "MulticlassAUROC"]

Average = Literal["micro", "macro", "weighted", "none"]
AVERAGES: tuple[str, ...] = ("micro", "macro", "weighted", "none")


def _check_num_thresholds(value: object, owner: str) -> int:
    if not isinstance(value, Integral) or isinstance(value, bool) or value < 2:
        raise ConfigError(
            f"{owner}: num_thresholds must be an int >= 2, got {value!r}; for example "
            f"{owner}(num_thresholds=200), the default."
        )
    return int(value)


def _thresholds(num: int, logits: bool, device: torch.device) -> torch.Tensor:
    """The threshold grid in probability space, or mapped to logits (0 -> -inf, 1 -> inf)."""
    grid = torch.linspace(0, 1, num, dtype=torch.float32)
    if logits:
        grid = torch.logit(grid.double()).float()
    return grid.to(device, non_blocking=True)  # a blocking copy would wait for the device


def _auc(counts: torch.Tensor) -> torch.Tensor:
    """AUROC per row of ``counts`` (..., 2, T + 1): negatives then positives per bucket.

    NaN where a row has no positives or no negatives.
    """
    counts = counts.cpu().double()
    above = counts.flip(-1).cumsum(-1).flip(-1)  # above[..., i] = count in buckets >= i
    rates = above[..., 1:] / above[..., :1]  # [fpr, tpr] at thresholds 0..T-1, decreasing
    zero = torch.zeros_like(rates[..., :1])
    curve = torch.cat([zero, rates.flip(-1), zero + 1], dim=-1)  # from (0, 0) to (1, 1)
    return torch.trapezoid(curve[..., 1, :], curve[..., 0, :])


class BinaryAUROC(Metric):
    """Area under the ROC curve of a binary classifier; logged as ``"auc"``.

    ``pred`` holds probabilities (logits with ``from_logits=True``) and ``target`` 0/1
    labels (any non-zero target is positive); both are flattened, so (N,) and (N, 1) mix.
    NaN before the first ``update`` and when the epoch saw only one class.

    The value is exactly the AUROC of the predictions rounded down to the threshold grid
    (a positive and a negative in one grid cell count one half), so it differs from the
    exact AUROC by at most half the fraction of (positive, negative) pairs sharing a cell.
    For predictions spread over [0, 1] and the default grid (spacing 1/199) that bound is
    about 2.5e-3 and the actual error, as errors within cells mostly cancel, usually
    below 1e-3; but predictions crowded into one cell (an untrained model's, all near
    0.5) read as 0.5. Raise ``num_thresholds`` for more resolution.

    Parameters
    ----------
    num_thresholds
        Number of thresholds, evenly spaced in [0, 1], of the approximating ROC curve.
    from_logits
        ``pred`` are logits: compared with the thresholds' logits, the same as passing
        them through a sigmoid first.

    Examples
    --------
    >>> m = BinaryAUROC()
    >>> m.update(torch.tensor([0.9, 0.8, 0.4]), torch.tensor([1, 1, 1]))
    >>> m.update(torch.tensor([0.5, 0.3, 0.2]), torch.tensor([0, 0, 0]))
    >>> round(m.compute(), 4)
    0.8889
    """

    abbrev = "auc"

    def __init__(self, num_thresholds: int = 200, from_logits: bool = False) -> None:
        owner = type(self).__name__
        self.num_thresholds = _check_num_thresholds(num_thresholds, owner)
        self.from_logits = check_flag(from_logits, "from_logits", owner)
        self.reset()

    def reset(self) -> None:
        self.counts: torch.Tensor | None = None  # (2, T + 1): negatives, positives per bucket
        self.thresholds: torch.Tensor | None = None

    def _start(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        self.thresholds = _thresholds(self.num_thresholds, self.from_logits, device)
        self.counts = torch.zeros(2 * (self.num_thresholds + 1), dtype=torch.long, device=device)
        return self.counts, self.thresholds

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        counts, thresholds = self.counts, self.thresholds
        if counts is None or thresholds is None:
            counts, thresholds = self._start(pred.device)
        if pred.shape != target.shape:
            check_same_size(pred, target, type(self).__name__)
            pred, target = pred.reshape(-1), target.reshape(-1)
        pred = pred.detach()
        bucket = torch.searchsorted(thresholds, pred, right=True)
        bucket = bucket.add_(target.bool(), alpha=self.num_thresholds + 1).view(-1)
        counts.index_add_(0, bucket, torch.ones_like(bucket))

    def compute(self) -> float:
        """The AUROC; NaN before the first ``update`` or with only one class seen."""
        if self.counts is None:
            return math.nan
        return _auc(self.counts.view(2, -1)).item()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_thresholds={self.num_thresholds}, "
            f"from_logits={self.from_logits})"
        )


class MulticlassAUROC(Metric):
    """One-vs-rest area under the ROC curve of a multiclass classifier; logged as ``"auc"``.

    ``pred`` holds class probabilities (N, C) (logits with ``from_logits=True``, which are
    softmaxed) and ``target`` (N,) or (N, 1) class indices. Each class's curve is
    approximated on the threshold grid as in :class:`BinaryAUROC`.

    Parameters
    ----------
    num_thresholds
        Number of thresholds, evenly spaced in [0, 1], of the approximating ROC curves.
    from_logits
        Apply a softmax over dim 1 to ``pred`` first.
    average
        ``"micro"`` (luz's default): the AUROC of all (sample, class) pairs pooled as one
        binary problem; ``"macro"``: mean of the per-class AUROCs; ``"weighted"``: their
        mean weighted by the number of samples of each class; ``"none"`` (or ``None``):
        the list of per-class AUROCs. Classes absent (or the only class) in the epoch
        have a NaN AUROC and are left out of the macro and weighted means. Before the
        first ``update``, ``compute`` gives NaN, or ``[]`` for ``"none"``.

    Examples
    --------
    >>> m = MulticlassAUROC(average="none")
    >>> m.update(torch.tensor([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3]]), torch.tensor([0, 1]))
    >>> m.update(torch.tensor([[0.1, 0.3, 0.6], [0.3, 0.4, 0.3]]), torch.tensor([2, 0]))
    >>> [round(a, 2) for a in m.compute()]
    [1.0, 1.0, 1.0]
    """

    abbrev = "auc"

    def __init__(
        self,
        num_thresholds: int = 200,
        from_logits: bool = False,
        average: Average | None = "micro",
    ) -> None:
        owner = type(self).__name__
        self.num_thresholds = _check_num_thresholds(num_thresholds, owner)
        self.from_logits = check_flag(from_logits, "from_logits", owner)
        if average is None:
            average = "none"
        if not isinstance(average, str) or average not in AVERAGES:
            raise ConfigError(
                f"{owner}: average must be one of {', '.join(map(repr, AVERAGES))}, "
                f"got {average!r}; for example {owner}(average='macro')."
            )
        self.average: Average = average  # type: ignore[assignment]
        self.reset()

    def reset(self) -> None:
        self.counts: torch.Tensor | None = None  # (C, 2, T + 1) flattened
        self.thresholds: torch.Tensor | None = None
        self.classes: torch.Tensor | None = None  # (1, C): 0, 1, ..., C - 1
        self.num_classes = 0

    def _start(self, num_classes: int, device: torch.device) -> tuple[torch.Tensor, ...]:
        self.num_classes = num_classes
        self.thresholds = _thresholds(self.num_thresholds, False, device)
        self.classes = torch.arange(num_classes, device=device).unsqueeze(0)
        size = self.num_thresholds + 1
        self.counts = torch.zeros(num_classes * 2 * size, dtype=torch.long, device=device)
        return self.counts, self.thresholds, self.classes

    def _check(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        width = pred.shape[1] if pred.dim() == 2 else 0
        if width < 2 or width != (self.num_classes or width):
            seen = f" as in the first batch, {self.num_classes}" if self.num_classes else " >= 2"
            raise ValueError(
                f"MulticlassAUROC: pred has shape {tuple(pred.shape)}; expected (N, C) class "
                f"probabilities with C{seen}. For binary problems use BinaryAUROC."
            )
        if target.numel() != pred.shape[0]:
            raise ValueError(
                f"MulticlassAUROC: pred has shape {tuple(pred.shape)} and target has shape "
                f"{tuple(target.shape)}; expected target (N,) class indices."
            )

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        counts, thresholds, classes = self.counts, self.thresholds, self.classes
        self._check(pred, target)
        if counts is None or thresholds is None or classes is None:
            counts, thresholds, classes = self._start(pred.shape[1], pred.device)
        pred = pred.detach()
        if self.from_logits:
            pred = pred.softmax(1)
        size = self.num_thresholds + 1
        # bucket of each (sample, class) + offset of the class's positives or negatives
        index = torch.searchsorted(thresholds, pred, right=True)
        index.add_(target.reshape(-1, 1) == classes, alpha=size).add_(classes, alpha=2 * size)
        index = index.view(-1)
        counts.index_add_(0, index, torch.ones_like(index))

    def compute(self) -> float | list[float]:
        """The averaged AUROC, or the per-class list for ``average="none"``."""
        if self.counts is None:
            return [] if self.average == "none" else math.nan
        counts = self.counts.view(self.num_classes, 2, -1)
        if self.average == "micro":
            return _auc(counts.sum(0)).item()
        aucs = _auc(counts)
        if self.average == "none":
            return aucs.tolist()
        known = ~aucs.isnan()
        if self.average == "macro":
            return aucs[known].mean().item()
        support = counts[:, 1].sum(-1).cpu().double()[known]
        return ((aucs[known] * support).sum() / support.sum()).item()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_thresholds={self.num_thresholds}, "
            f"from_logits={self.from_logits}, average={self.average!r})"
        )

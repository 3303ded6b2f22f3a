"""Area under the ROC curve on a fixed grid of thresholds: ``BinaryAUROC``, ``MulticlassAUROC``.

As luz (and Keras), the AUROC is approximated without storing the epoch's predictions: each
batch adds to counts of positives and negatives per threshold bucket, and ``compute`` builds
the ROC curve at the thresholds ``linspace(0, 1, num_thresholds)``, or at the ones given with
``thresholds=`` (plus its end points (0, 0) and (1, 1)), and integrates it with the trapezoid
rule.

A prediction ``p`` falls in bucket ``k`` = the number of thresholds ``<= p``, so it counts as
positive at threshold ``j`` exactly when ``k > j``. One ``searchsorted`` and one ``index_add_``
per batch, and neither waits for the device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral
from typing import Literal, TypeAlias

import torch

from luzwidget.core.exceptions import ConfigError
from luzwidget.metrics.base import Metric
from luzwidget.metrics.classification import check_flag, check_same_size

__all__ = ["BinaryAUROC", "MulticlassAUROC"]

Average = Literal["micro", "macro", "weighted", "none"]
AVERAGES: tuple[str, ...] = ("micro", "macro", "weighted", "none")
Thresholds: TypeAlias = "int | Sequence[float] | torch.Tensor | None"


def _check_num_thresholds(value: object, owner: str, argument: str = "num_thresholds") -> int:
    if not isinstance(value, Integral) or isinstance(value, bool) or value < 2:
        raise ConfigError(
            f"{owner}: {argument} must be an int >= 2, got {value!r}; for example "
            f"{owner}({argument}=200), the default."
        )
    return int(value)


def _check_thresholds(
    num_thresholds: object, thresholds: object, owner: str
) -> tuple[int, tuple[float, ...] | None]:
    """The number of thresholds and the explicit ones (sorted, unique), or None for a grid.

    ``thresholds`` as an int is a number of evenly spaced thresholds, as in torchmetrics;
    as a sequence (or 1-D tensor) of probabilities, the thresholds themselves.
    """
    if thresholds is None:
        return _check_num_thresholds(num_thresholds, owner), None
    if isinstance(thresholds, Integral) and not isinstance(thresholds, bool):
        return _check_num_thresholds(thresholds, owner, "thresholds"), None
    try:
        values = torch.as_tensor(thresholds, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        values = torch.empty(0)
    if values.dim() != 1 or not values.numel() or not ((values >= 0) & (values <= 1)).all():
        raise ConfigError(
            f"{owner}: thresholds must be an int >= 2 or a non-empty sequence of "
            f"probabilities in [0, 1], got {thresholds!r:.80}; for example "
            f"{owner}(thresholds=[0.1, 0.5, 0.9]) or {owner}(thresholds=50)."
        )
    grid = tuple(torch.unique(values.float()).tolist())  # sorted, in float32 as the grid
    return len(grid), grid


def _thresholds(
    num: int, given: tuple[float, ...] | None, logits: bool, device: torch.device
) -> torch.Tensor:
    """The thresholds in probability space, or mapped to logits (0 -> -inf, 1 -> inf)."""
    if given is None:
        grid = torch.linspace(0, 1, num, dtype=torch.float32)
    else:
        grid = torch.tensor(given, dtype=torch.float32)
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
    thresholds
        As luz and torchmetrics: an int is a number of evenly spaced thresholds (the same
        as ``num_thresholds``); a sequence or 1-D tensor of probabilities in [0, 1] gives
        the thresholds themselves (sorted, duplicates dropped), and ``num_thresholds`` is
        ignored. A prediction ``p`` is positive at threshold ``t`` when ``p >= t``; the
        curve always runs from (0, 0) to (1, 1), so ``thresholds=[0.5]`` is the AUROC of
        the predictions cut at 0.5, and with 0 and 1 among the thresholds the value equals
        torchmetrics' binned AUROC at the same thresholds.
    name
        The records name (default: ``"auc"``, made unique if another metric has it).

    Examples
    --------
    >>> m = BinaryAUROC()
    >>> m.update(torch.tensor([0.9, 0.8, 0.4]), torch.tensor([1, 1, 1]))
    >>> m.update(torch.tensor([0.5, 0.3, 0.2]), torch.tensor([0, 0, 0]))
    >>> round(m.compute(), 4)
    0.8889
    """

    abbrev = "auc"

    def __init__(
        self,
        num_thresholds: int = 200,
        from_logits: bool = False,
        *,
        thresholds: Thresholds = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        owner = type(self).__name__
        self.num_thresholds, self.thresholds = _check_thresholds(num_thresholds, thresholds, owner)
        self.from_logits = check_flag(from_logits, "from_logits", owner)
        self.reset()

    def reset(self) -> None:
        self.counts: torch.Tensor | None = None  # (2, T + 1): negatives, positives per bucket
        self.cuts: torch.Tensor | None = None  # the thresholds on the device (logits or not)

    def _start(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        self.cuts = _thresholds(self.num_thresholds, self.thresholds, self.from_logits, device)
        self.counts = torch.zeros(2 * (self.num_thresholds + 1), dtype=torch.long, device=device)
        return self.counts, self.cuts

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        counts, thresholds = self.counts, self.cuts
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
        return self._repr(**_grid_repr(self), from_logits=self.from_logits)


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
    thresholds
        An int (a number of evenly spaced thresholds) or a sequence of probabilities in
        [0, 1] used instead of the grid, as in :class:`BinaryAUROC`.
    name
        The records name (default: ``"auc"``, made unique if another metric has it).
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
        *,
        thresholds: Thresholds = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        owner = type(self).__name__
        self.num_thresholds, self.thresholds = _check_thresholds(num_thresholds, thresholds, owner)
        self.from_logits = check_flag(from_logits, "from_logits", owner)
        if average is None:
            average = "none"
        if not isinstance(average, str) or average not in AVERAGES:
            raise ConfigError(
                f"{owner}: average must be one of {', '.join(map(repr, AVERAGES))}, "
                f"got {average!r}; for example {owner}(average='macro')."
            )
        self.average: Average = average
        self.reset()

    def reset(self) -> None:
        self.counts: torch.Tensor | None = None  # (C, 2, T + 1) flattened
        self.cuts: torch.Tensor | None = None  # the thresholds on the device
        self.classes: torch.Tensor | None = None  # (1, C): 0, 1, ..., C - 1
        self.num_classes = 0

    def _start(self, num_classes: int, device: torch.device) -> tuple[torch.Tensor, ...]:
        self.num_classes = num_classes
        self.cuts = _thresholds(self.num_thresholds, self.thresholds, False, device)
        self.classes = torch.arange(num_classes, device=device).unsqueeze(0)
        size = self.num_thresholds + 1
        self.counts = torch.zeros(num_classes * 2 * size, dtype=torch.long, device=device)
        return self.counts, self.cuts, self.classes

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
        counts, thresholds, classes = self.counts, self.cuts, self.classes
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
        return self._repr(**_grid_repr(self), from_logits=self.from_logits, average=self.average)


def _grid_repr(metric: BinaryAUROC | MulticlassAUROC) -> dict[str, object]:
    """``num_thresholds=``, or ``thresholds=`` when they were given."""
    if metric.thresholds is None:
        return {"num_thresholds": metric.num_thresholds}
    return {"thresholds": list(metric.thresholds)}

"""What a run keeps to step back cheaply: its resume points and its per-batch loss.

:class:`ResumeCache` holds :class:`~luzwidget.travel.resume.ResumePoint` s, bounded by a
quarter of the run's :class:`~luzwidget.SnapshotStore` budget; over it, the points farthest
from where the run last went back to go first. :class:`LossLog` records the training loss
of every batch as the run trains (what ``find()`` reads to go straight to a batch).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from luzwidget.core.callback import Callback
from luzwidget.core.engine import engine_of
from luzwidget.storage.snapstore import SnapshotStore
from luzwidget.travel.resume import ResumePoint
from luzwidget.travel.snapshots import train_length

if TYPE_CHECKING:
    from luzwidget.core.context import Context

__all__ = ["FLUSH_EVERY", "LossLog", "ResumeCache"]

FLUSH_EVERY = 1024
"""Batches whose losses are held as tensors before they are stacked into the record."""


class ResumeCache:
    """A run's resume points, oldest batch first, within ``budget`` bytes (a quarter of the
    store's, read when a point is added).

    Attributes
    ----------
    focus : int
        The batch the run last went back to: over budget, the points farthest from it
        are dropped first.
    taken : int
        Points taken so far (a cost counter).
    seconds : float
        Time spent taking them.
    """

    def __init__(self, store: Callable[[], SnapshotStore]) -> None:
        self._store = store
        self.points: list[ResumePoint] = []
        self.focus = 0
        self.taken = 0
        self.seconds = 0.0

    @property
    def budget(self) -> int:
        """The bytes the points may hold: a quarter of the store's budget."""
        return self._store().budget // 4

    @property
    def bytes(self) -> int:
        """The bytes the points hold now."""
        return sum(p.bytes for p in self.points)

    def add(self, point: ResumePoint, seconds: float = 0.0) -> None:
        """Keep ``point`` (in place of one at the same batch), then stay within budget."""
        self.taken += 1
        self.seconds += seconds
        batches = [p.batches for p in self.points]
        at = bisect.bisect_left(batches, point.batches)
        if at < len(self.points) and self.points[at].batches == point.batches:
            self.points[at] = point
        else:
            self.points.insert(at, point)
        self.prune()
        budget = self.budget
        while self.bytes > budget and len(self.points) > 1:
            others = [p for p in self.points if p is not point]
            self.points.remove(max(others, key=lambda p: abs(p.batches - self.focus)))

    def prune(self) -> None:
        """Drop the points whose snapshot the store let go of (a pause's, evicted)."""
        kept = {id(s) for s in self._store().list()}
        self.points = [p for p in self.points if p.own or id(p.snap) in kept or p.snap.path]

    def before(self, batches: int) -> ResumePoint | None:
        """The latest point with at most ``batches`` training batches done (None: none)."""
        found = None
        for point in self.points:
            if point.batches > batches:
                break
            found = point
        return found

    def drop_after(self, batches: int) -> None:
        """Forget the points past ``batches`` (the run went back: they were another future)."""
        self.points = [p for p in self.points if p.batches <= batches]

    def point_bytes(self) -> int:
        """What a point of this run holds (the last one's), 0 before the first."""
        own = [p.bytes for p in self.points if p.own]
        return own[-1] if own else 0

    def room(self, cap: int) -> int:
        """How many points fit in the budget (at most ``cap``, at least 1)."""
        size = self.point_bytes()
        return cap if size == 0 else max(1, min(cap, self.budget // size))


class LossLog(Callback):
    """Records the training loss of every batch, by its number in the fit.

    Per batch it appends the batch's number and its (detached) loss tensor to two lists
    (no host sync); every :data:`FLUSH_EVERY` batches they are stacked into a float32
    tensor. A dict loss (several optimizers) is recorded as its sum. A rewind cuts the
    record where the run went back to (:meth:`truncate`).
    """

    run_bound = True
    weight = 1000

    def __init__(self) -> None:
        self.values = torch.full((0,), math.nan)
        self.known = torch.zeros(0, dtype=torch.bool)
        self._length: int | None = None
        self._trait: dict[str, Any] = {}
        self._at: list[int] = []
        self._losses: list[Any] = []

    def on_fit_begin(self, ctx: Context) -> None:
        self._length = train_length(ctx)
        self._trait = engine_of(ctx).values

    def on_train_batch_end(self, ctx: Context) -> None:
        length, v = self._length, self._trait
        if length is None or not v:
            return
        self._at.append((v["epoch"] - 1) * length + v["iter"])
        self._losses.append(v["loss"])
        if len(self._at) >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        """Stack the losses held as tensors into the record."""
        if not self._at:
            return
        at, losses = self._at, self._losses
        self._at, self._losses = [], []
        totals = [(i, _total(loss)) for i, loss in zip(at, losses, strict=True)]
        pairs = [(i, value) for i, value in totals if value is not None]
        if not pairs:
            return
        index = torch.tensor([i - 1 for i, _ in pairs], dtype=torch.int64)
        numbers = _floats([value for _, value in pairs])
        size = int(index.max()) + 1
        if size > self.values.numel():
            grown = max(size, 2 * self.values.numel())
            self.values = torch.cat(
                [self.values, torch.full((grown - len(self.values),), math.nan)]
            )
            self.known = torch.cat(
                [self.known, torch.zeros(grown - len(self.known), dtype=torch.bool)]
            )
        self.values[index] = numbers
        self.known[index] = True

    def record(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(losses, known)``: the loss of batch ``i + 1`` at ``i`` (float32, NaN where not
        known) and whether it is known, up to the last batch recorded."""
        self.flush()
        known = self.known.nonzero()
        n = int(known[-1, 0]) + 1 if len(known) else 0
        return self.values[:n].clone(), self.known[:n].clone()

    def truncate(self, batches: int) -> None:
        """Forget the losses after batch ``batches`` (the run went back there)."""
        self.flush()
        self.values[batches:] = math.nan
        self.known[batches:] = False

    def __repr__(self) -> str:
        return "LossLog()"


def _total(loss: Any) -> Any:
    """A loss as one value: a dict's (several optimizers') sum; None stays None."""
    if isinstance(loss, dict):
        values = [v for v in loss.values() if v is not None]
        return torch.stack([torch.as_tensor(v).float() for v in values]).sum() if values else None
    return loss


def _floats(values: list[Any]) -> torch.Tensor:
    try:
        return torch.stack([torch.as_tensor(v).detach().float().reshape(()) for v in values]).cpu()
    except (RuntimeError, TypeError, ValueError):
        return torch.tensor([_one(v) for v in values], dtype=torch.float32)


def _one(value: Any) -> float:
    try:
        return float(torch.as_tensor(value).detach().float().mean())
    except (RuntimeError, TypeError, ValueError):
        return math.nan

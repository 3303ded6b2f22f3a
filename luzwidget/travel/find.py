"""``run.find(condition)``: the run paused at the start of the first training batch where
``condition`` held, replayed exactly from its snapshots, its context intact to step into.

How each condition is decided (record, binary search, replay) is in
:mod:`luzwidget.travel.conditions`. The search never looks past where the run is: after a
rewind or a step back, what came after was another future, and its record is gone.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import torch

from luzwidget.control.debugging import Found
from luzwidget.core.exceptions import ConfigError, RunStateError
from luzwidget.core.states import RunState
from luzwidget.storage.snapstore import Position, Snapshot
from luzwidget.travel.conditions import Condition, condition_of
from luzwidget.travel.landing import cache_of, drive_to, finish, land, restore_before
from luzwidget.travel.positions import batch_begin, batch_end, here
from luzwidget.travel.snapshots import batches_of, train_length
from luzwidget.travel.state import travel_of

if TYPE_CHECKING:
    from luzwidget.control.run import Run

__all__ = ["SEARCH_POINTS", "Found", "find"]

SEARCH_POINTS = 16
"""Resume points a search keeps along the stretch it replays, at most (fewer when the
budget holds fewer): the landing after it then replays a sixteenth of the stretch."""


def find(run: Run, condition: Any, **options: Any) -> Found | None:
    """See :meth:`luzwidget.Run.find`."""
    cond = condition_of(condition, **options)
    if run.state == RunState.RUNNING:
        raise RunStateError("find: the run is training; run.pause() and run.wait() first.")
    length, done = train_length(run.ctx), batches_of(run)
    backwards = travel_of(run).backwards
    if length is None or done is None or backwards is None:
        raise ConfigError(
            "find: needs a run that keeps snapshots and its loss record (setup(...).run(), "
            "with automatic snapshots) over a training loader with a length."
        )
    began = time.perf_counter()
    if cond.recorded is not None or cond.metric is not None:
        batch, value = _from_records(run, cond, done, length)
        how, searched = "record", 0
    else:
        batch, how, searched = _searched(run, cond, done, length)
        value = math.nan
    if batch is None:
        return None
    epoch, iter_ = (batch - 1) // length + 1, (batch - 1) % length + 1
    reason = f"found {cond.name} at epoch {epoch}, batch {iter_}"
    landing = land(run, batch_begin(epoch, iter_), reason)
    return Found(cond.name, batch, epoch, iter_, how, searched + landing.replayed,
                 time.perf_counter() - began, value, cond.detail)  # fmt: skip


def _from_records(run: Run, cond: Condition, done: int, length: int) -> tuple[int | None, float]:
    """The batch straight from the loss record (or the epoch metrics), and its value."""
    if cond.metric is not None:
        return _metric_batch(run, cond.metric, length)
    assert cond.recorded is not None
    backwards = travel_of(run).backwards
    assert backwards is not None
    losses, known = backwards.losses.record()
    losses, known = losses[:done], known[:done]
    return cond.recorded(losses, known)


def _metric_batch(
    run: Run, metric: tuple[str, str, float | None, float | None], length: int
) -> tuple[int | None, float]:
    set_name, name, above, below = metric
    history = run.ctx.history
    last = history.epochs(set_name)
    if not last:
        raise ConfigError(f"find: no {set_name} metrics are logged yet (none to cross a value).")
    known = {k for e in range(1, last + 1) for k in history.metrics(set_name, e)}
    if name not in known:
        raise ConfigError(
            f"find: no {set_name} metric {name!r}; logged: {', '.join(sorted(known))}."
        )
    for epoch in range(1, last + 1):
        value = float(history.metrics(set_name, epoch).get(name, math.nan))
        if (above is not None and value > above) or (below is not None and value < below):
            return (epoch - 1) * length + 1, value
    return None, math.nan


def _searched(run: Run, cond: Condition, done: int, length: int) -> tuple[int | None, str, int]:
    """The batch found by replaying a stretch (narrowed by snapshots and the record where
    the condition allows); ``(batch, how, batches replayed)``."""
    lo, hi, how = 1, done, "replay"
    if "weights" in cond.checks or ("loss" in cond.checks and "gradients" in cond.checks):
        lo, hi, how = _narrowed(run, cond, done)
    if hi < lo:
        return None, how, 0
    origin = here(run)
    was_done = run.state == RunState.DONE
    epoch, iter_ = (lo - 1) // length + 1, (lo - 1) % length + 1
    base = restore_before(run, batch_begin(epoch, iter_), f"searching for {cond.name}")
    end = _end_of(hi, done, length, origin)
    cache = cache_of(run)
    room = SEARCH_POINTS if cache is None else cache.room(SEARCH_POINTS)
    stride = max(1, (hi - base.batches) // room)  # no more points than the budget holds
    if cache is not None:
        cache.focus = hi
    watch = cond.watch(run.ctx)
    replayed, hit = drive_to(run, end, watch=watch, keep=lambda n: (n - base.batches) % stride == 0)
    if hit:
        found = (int(run.ctx.epoch) - 1) * length + int(run.ctx.iter)
        return found, how, replayed
    finish(run, base.snap, run.reason)
    if hi < done:  # the record or a snapshot said it is there: the replay went another way
        raise RunStateError(
            f"find: the record and snapshots put {cond.name} by batch {hi} of the fit, but "
            f"the replay from {base.what} did not meet it: the run was changed by hand since "
            "(a weight set at a pause, an edit), and a replay cannot repeat that; the run is "
            f"at batch {hi} now."
        )
    if was_done:
        run.resume()  # the search went to the end: it ends again, as it had
    return None, how, replayed


def _end_of(hi: int, done: int, length: int, origin: Position | None) -> Position:
    """Where a search stops at the latest: the end of batch ``hi``, or (``hi`` is the last
    batch done) where the run was."""
    if hi >= done and origin is not None:
        return origin
    return batch_end((hi - 1) // length + 1, "train", (hi - 1) % length + 1)


def _narrowed(run: Run, cond: Condition, done: int) -> tuple[int, int, str]:
    """``(lo, hi, how)``: the stretch of batches to replay for non-finite values, between
    the last snapshot with finite weights and the first without (a binary search), and no
    later than the first non-finite loss recorded."""
    hi = done
    if "loss" in cond.checks:
        backwards = travel_of(run).backwards
        assert backwards is not None
        losses, known = backwards.losses.record()
        bad = (known[:done] & ~torch.isfinite(losses[:done])).nonzero()
        if len(bad):
            hi = int(bad[0, 0]) + 1
    snaps = _weight_snapshots(run, hi)
    first_bad = _first_bad(snaps)
    if first_bad is not None:
        hi = min(hi, int(snaps[first_bad].batches or 0))
        good = snaps[:first_bad]
    else:
        good = snaps
    lo = (int(good[-1].batches or 0) + 1) if good else 1
    return lo, hi, "snapshots and replay"


def _weight_snapshots(run: Run, upto: int) -> list[Snapshot]:
    """Every snapshot and resume point with its weights, at most ``upto`` batches in,
    by batches (one per batch count)."""
    snaps = {s.batches: s for s in travel_of(run).store.list() if s.batches is not None}
    cache = cache_of(run)
    if cache is not None:
        snaps.update({p.batches: p.snap for p in cache.points})
    return [snaps[b] for b in sorted(snaps) if b <= upto]


def _first_bad(snaps: list[Snapshot]) -> int | None:
    """The index of the first snapshot whose weights are not all finite, by bisection
    (weights stay non-finite once they are)."""
    lo, hi = 0, len(snaps)
    while lo < hi:
        mid = (lo + hi) // 2
        if _finite_weights(snaps[mid]):
            lo = mid + 1
        else:
            hi = mid
    return lo if lo < len(snaps) else None


def _finite_weights(snap: Snapshot) -> bool:
    model = snap.load().get("model", {})
    return all(
        bool(torch.isfinite(t).all())
        for t in model.values()
        if isinstance(t, torch.Tensor) and t.is_floating_point()
    )

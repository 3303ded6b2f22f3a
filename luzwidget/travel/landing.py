"""Landing a run at a position of its past: from the nearest base before it, replayed.

A base is a snapshot restored directly (the run's start, an epoch end) or a
:class:`~luzwidget.travel.resume.ResumePoint` (the end of a training batch). :func:`land`
restores the latest base before the position and replays the run to it, breakpoints off,
as a rewind does, and keeps resume points on the way (the last few batches before the
position: what the next step back starts from). :func:`drive_to` is the replay itself,
which ``find()`` also uses to look at every event of a stretch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from luzwidget.control.debugging import Landing
from luzwidget.core.events import Event
from luzwidget.core.exceptions import ConfigError, RunStateError
from luzwidget.core.report import report
from luzwidget.core.states import RunState
from luzwidget.storage.snapstore import START, Position, Snapshot
from luzwidget.travel.positions import here, key, same
from luzwidget.travel.replay import put_back
from luzwidget.travel.resume import ResumePoint, point_now, restore_point
from luzwidget.travel.snapshots import train_length
from luzwidget.travel.state import travel_of

if TYPE_CHECKING:
    from luzwidget.control.run import Run
    from luzwidget.travel.points import ResumeCache

__all__ = ["DENSE", "Base", "Landing", "drive_to", "land", "restore_before"]

DENSE = 32
"""Resume points kept at most while replaying to a place (the batches just before it)."""

Keep = Callable[[int], bool]
"""Whether to take a resume point at the end of training batch ``n`` (numbered in the fit)."""


@dataclass(frozen=True)
class Base:
    """Where a replay starts: ``what`` it restored, the training ``batches`` done there,
    its snapshot and its place in the loop's order (:func:`~luzwidget.travel.positions.key`)."""

    what: str
    batches: int
    snap: Snapshot
    key: tuple[int, ...]


def cache_of(run: Run) -> ResumeCache | None:
    """The run's resume points (None: it keeps none, e.g. a blocking fit's run)."""
    backwards = travel_of(run).backwards
    return None if backwards is None else backwards.cache


def _bases(run: Run) -> list[tuple[tuple[int, ...], Snapshot | ResumePoint]]:
    found: list[tuple[tuple[int, ...], Snapshot | ResumePoint]] = []
    for snap in travel_of(run).store.list():
        if snap.rewindable:
            found.append(((-2,) if snap.kind == START else (snap.epoch + 1, -1), snap))
    cache = cache_of(run)
    if cache is not None:
        cache.prune()
        for point in cache.points:
            found.append(((point.extra.epoch, 2, point.extra.iter, 1 << 30), point))
    return found


def restore_before(
    run: Run, target: Position, reason: str, *, limit: tuple[int, ...] | None = None
) -> Base:
    """Restore the latest base strictly before ``target`` (or before the place ``limit``
    in the loop's order) into ``run``, now paused there.

    Raises
    ------
    ConfigError
        If no snapshot is early enough (evicted, or the run keeps none).
    """
    if limit is None:
        limit = key(target, list(run.ctx.optimizers))
    earlier = [(k, b) for k, b in _bases(run) if k < limit]
    if not earlier:
        raise ConfigError(
            f"no snapshot before {_at(target)} to replay from (this run keeps none that early; "
            "raise run.snapshot_store.budget, or keep automatic snapshots on)."
        )
    where, base = max(earlier, key=lambda pair: pair[0])
    if isinstance(base, ResumePoint):
        restore_point(run, base, reason)
        what = f"epoch {base.extra.epoch}, batch {base.extra.iter}"
        return Base(what, base.batches, base.snap, where)
    put_back(run, base, reason)
    what = "the start" if base.kind == START else f"the end of epoch {base.epoch}"
    return Base(what, int(base.batches or 0), base, where)


def _at(position: Position) -> str:
    epoch, phase, iter_, event, _ = position
    if Event(event).in_batch:
        return f"{event} (epoch {epoch}, {phase} batch {iter_})"
    return f"{event} (epoch {epoch})"


def drive_to(
    run: Run,
    target: Position,
    *,
    watch: Callable[[Event], bool] | None = None,
    keep: Keep | None = None,
) -> tuple[int, bool]:
    """Replay ``run`` here, breakpoints off, to ``target``, or to the first event where
    ``watch(event)`` is true; take a resume point at each training batch end ``keep``
    says. Returns ``(training batches begun, whether watch stopped it)``.

    Raises
    ------
    RunStateError
        If the replay stopped elsewhere (an error, or past the target: the run's
        settings changed since, so it went another way); the run is there now.
    """
    travel, until = travel_of(run), _Until(run, target, watch, keep)
    travel.quiet = True
    try:
        run.drive_until(until, breakpoints=False)
    finally:
        travel.quiet = False
    event = run.event
    there = event is not None and (until.hit or same(target, event, run.ctx))
    if run.state != RunState.PAUSED or until.past or not there:
        raise RunStateError(
            f"the replay to {_at(target)} stopped at {event} ({run.state}: {run.reason}); the "
            "run is there now (its settings changed since, or it failed on the way)."
        )
    return until.count, until.hit


class _Until:
    """A replay's stop condition: counts the training batches, takes resume points,
    stops at the target, at ``watch``, or once past the target."""

    def __init__(
        self, run: Run, target: Position, watch: Callable[[Event], bool] | None, keep: Keep | None
    ) -> None:
        self.run, self.target, self.watch, self.keep = run, target, watch, keep
        self.names = list(run.ctx.optimizers)
        self.limit = key(target, self.names)
        self.length = train_length(run.ctx) or 0
        self.cache = cache_of(run)
        self.count, self.hit, self.past = 0, False, False

    def __call__(self, fired: Event) -> bool:
        ctx = self.run.ctx
        if fired is Event.on_train_batch_begin:
            self.count += 1
        elif fired is Event.on_train_batch_end and self.keep is not None:
            self._point((int(ctx.epoch) - 1) * self.length + int(ctx.iter))
        if self.watch is not None and self.watch(fired):
            self.hit = True
            return True
        if same(self.target, fired, ctx):
            return True
        position = here(self.run)
        self.past = position is not None and key(position, self.names) > self.limit
        return self.past

    def _point(self, number: int) -> None:
        if self.cache is None or self.keep is None or not self.keep(number):
            return
        began = time.perf_counter()
        point = point_now(self.run)
        if point is not None:
            self.cache.add(point, time.perf_counter() - began)


def land(run: Run, target: Position, reason: str, *, window: int = DENSE) -> Landing:
    """Put ``run`` at ``target`` (paused after that event): the latest base before it,
    replayed; resume points kept at ``window`` training batch ends on the way (fewer if
    the budget allows fewer), those before the target's batch and the one before it: the
    bases of the next steps back. The run's watchers are told, as after a rewind."""
    if run.state == RunState.RUNNING:
        raise RunStateError(f"{reason}: the run is training; run.pause() and run.wait() first.")
    began = time.perf_counter()
    base = restore_before(run, target, reason)
    cache = cache_of(run)
    epoch, phase, iter_, _, _ = target
    length = train_length(run.ctx) or 0
    last = (epoch - 1) * length + (iter_ if phase == "train" else length)
    room = window if cache is None else cache.room(window)
    if cache is not None:
        cache.focus = last
    replayed, _ = drive_to(run, target, keep=lambda n: last - room - 1 <= n <= last - 2)
    finish(run, base.snap, reason)
    return Landing(base.what, replayed, time.perf_counter() - began)


def finish(run: Run, snap: Snapshot, reason: str) -> None:
    """After a landing: the reason, and the watchers told (a dashboard cuts its stream,
    the loss record and the resume points after this place are forgotten)."""
    travel = travel_of(run)
    run.reason = reason
    travel.rewound = None
    travel.rewinds += 1
    for watcher in list(travel.watchers):
        try:
            watcher(snap)
        except Exception as exc:  # a view's bug must not break the landing
            report("a rewind watcher failed", error=exc)

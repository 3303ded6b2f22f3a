"""What a run keeps so that it can go backwards cheaply: ``travel_of(run).backwards``.

Installed with automatic snapshots (an interactive run; a blocking ``fit()`` keeps none):
the :class:`~luzwidget.travel.points.LossLog` (the per-batch training loss),
:class:`~luzwidget.travel.resume.EpochStart` (the random state each epoch began with, for a
DataLoader's order), the :class:`~luzwidget.travel.points.ResumeCache`, and a run listener
that makes a resume point of each pause at a training batch's end from the snapshot the
pause took anyway (no second copy). After a rewind or a landing, the loss record and the
points past the place gone back to are forgotten: they were another future.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING

from luzwidget.core.events import Event
from luzwidget.core.states import RunState
from luzwidget.storage.snapstore import INSIDE, Snapshot
from luzwidget.travel.points import LossLog, ResumeCache
from luzwidget.travel.positions import here
from luzwidget.travel.resume import EpochStart, point_now
from luzwidget.travel.snapshots import batches_of
from luzwidget.travel.state import travel_of

if TYPE_CHECKING:
    from luzwidget.control.run import Run

__all__ = ["Backwards"]


class Backwards:
    """A run's resume points, loss record and epoch starts (see the module's docstring)."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.cache = ResumeCache(lambda: travel_of(run).store)
        self.losses = LossLog()
        self.start = EpochStart()

    def attach(self) -> None:
        """Put the callbacks, the pause listener and the rewind watcher in the run."""
        run = self.run
        run.ctx.callbacks = [*run.ctx.callbacks, self.losses, self.start]
        run.add_listener(self.at_pause)
        travel_of(run).watchers.append(self.went_back)

    def detach(self) -> None:
        """Take them out again."""
        run = self.run
        for callback in (self.losses, self.start):
            with contextlib.suppress(Exception):
                run.remove_callback(callback)
        run.remove_listener(self.at_pause)
        with contextlib.suppress(ValueError):
            travel_of(run).watchers.remove(self.went_back)

    def at_pause(self, run: Run) -> None:
        """Run listener: a pause at a training batch's end becomes a resume point, sharing
        the snapshot the pause took (none taken: none made)."""
        travel = travel_of(run)
        if (
            run.state != RunState.PAUSED
            or travel.quiet
            or run.event is not Event.on_train_batch_end
        ):
            return
        snaps = travel.store.list()
        latest = snaps[-1] if snaps else None
        if latest is None or latest.kind != INSIDE or latest.position != here(run):
            return
        if any(p.snap is latest for p in self.cache.points):
            return
        began = time.perf_counter()
        point = point_now(run, latest)
        if point is not None:
            self.cache.add(point, time.perf_counter() - began)

    def went_back(self, _: Snapshot) -> None:
        """Rewind watcher: forget the losses and resume points past where the run is."""
        done = batches_of(self.run)
        if done is None:
            return
        self.losses.truncate(done)
        self.cache.drop_after(done)

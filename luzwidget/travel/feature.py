"""Time travel as a run's feature: what the composition root installs (``run.features.travel``).

>>> install(run, automatic=True)     # luzwidget.session does this for setup(...).run()
>>> run.snapshot(); run.rewind(); run.branch(lr=1e-2); run.compare()
>>> run.step_back(); run.find("nan")


With ``automatic`` the run takes its own snapshots (at epoch ends, before pauses, at its
start; see :mod:`luzwidget.travel.snapshots`) and draws from its own random streams; without
(a blocking ``fit()``, which nobody is there to rewind) it keeps only those asked for.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from luzwidget.control.debugging import Found, Landing
from luzwidget.storage.snapstore import Snapshot
from luzwidget.travel import branches, replay
from luzwidget.travel.backwards import Backwards
from luzwidget.travel.find import find
from luzwidget.travel.snapshots import TakeSnapshots, before_pause, own_rng, take
from luzwidget.travel.state import TravelState
from luzwidget.travel.stepback import step_back

if TYPE_CHECKING:
    import pandas as pd

    from luzwidget.control.run import Run

__all__ = ["TimeTravel", "install"]


class TimeTravel(TravelState):
    """A run's time travel: its state, and the members ``Run`` delegates to."""

    def __init__(self, run: Run, automatic: bool) -> None:
        super().__init__(run)
        self.automatic = automatic
        self._callback: TakeSnapshots | None = None

    def snapshot(self, label: str | None) -> Snapshot | None:
        """See :meth:`luzwidget.Run.snapshot`."""
        return take(self.run, label)

    def rewind(
        self, snapshot: Snapshot | None, *, epoch: int | None, batches: int | None
    ) -> Snapshot:
        """See :func:`luzwidget.travel.replay.rewind`."""
        return replay.rewind(self.run, snapshot, epoch=epoch, batches=batches)

    def branch(self, snapshot: Snapshot | None, **edits: Any) -> Run:
        """See :func:`luzwidget.travel.branches.branch`."""
        return branches.branch(self.run, snapshot, **edits)

    def compare(self) -> pd.DataFrame:
        """See :func:`luzwidget.travel.branches.compare`."""
        return branches.compare(self.run)  # type: ignore[no-any-return]  # a DataFrame

    def step_back(self, what: str, n: int) -> Landing:
        """See :func:`luzwidget.travel.stepback.step_back`."""
        return step_back(self.run, what, n)

    def find(self, condition: Any, **options: Any) -> Found | None:
        """See :func:`luzwidget.travel.find.find`."""
        return find(self.run, condition, **options)

    def attach(self) -> None:
        """Put this feature in its run (automatic snapshots: the callback and listeners)."""
        run = self.run
        run.features.travel = self
        if self.automatic:
            self._callback = TakeSnapshots(run)
            run.ctx.callbacks = [*run.ctx.callbacks, self._callback]
            run.add_listener(own_rng)
            run.add_listener(before_pause)
            self.backwards = Backwards(run)  # after before_pause: it shares its snapshots
            self.backwards.attach()

    def detach(self) -> None:
        """Take time travel out of the run (its snapshots go with it)."""
        run = self.run
        if self._callback is not None:
            with contextlib.suppress(Exception):
                run.remove_callback(self._callback)
            self._callback = None
        run.remove_listener(own_rng)
        run.remove_listener(before_pause)
        if self.backwards is not None:
            self.backwards.detach()
            self.backwards = None
        if run.features.travel is self:
            run.features.travel = None


def install(run: Run, automatic: bool = True) -> TimeTravel:
    """Give ``run`` time travel; ``automatic``: it takes its own snapshots (see above)."""
    travel = TimeTravel(run, automatic)
    travel.attach()
    return travel

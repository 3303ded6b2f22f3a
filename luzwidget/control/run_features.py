"""The half of :class:`~luzwidget.control.run.Run` that faces its features (the seam).

Users call the delegating members (``run.snapshot()``, ``run.rewind()``, ``run.layers()``,
...), which hand over to the feature the composition root installed in ``run.features``
(see :mod:`luzwidget.control.features`). Features, in turn, use the few methods grouped
under "for features" below, never the driver's internals.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from luzwidget.control.boundary import Boundary
from luzwidget.control.driver import Driver
from luzwidget.control.features import NO_FEATURES, Features, InsightFeature, TravelFeature
from luzwidget.core.context import Context
from luzwidget.core.events import Event
from luzwidget.core.exceptions import ConfigError
from luzwidget.core.loop import Loop
from luzwidget.core.states import Until
from luzwidget.storage.snapstore import Snapshot, SnapshotStore

if TYPE_CHECKING:
    import pandas as pd

    from luzwidget.control.run import Run

__all__ = ["RunFeatures"]


class RunFeatures:
    """Time travel and insight as run members, and the run's side of the seam."""

    ctx: Context
    features: Features
    _driver: Driver

    # -- going back in time (the travel feature) ----------------------------------------
    @property
    def snapshot_store(self) -> SnapshotStore:
        """The run's :class:`~luzwidget.SnapshotStore` (``budget``, ``every``, ``spill_dir``);
        assign another to change them, the snapshots kept so far moved into it."""
        return self._travel("snapshot_store").store

    @snapshot_store.setter
    def snapshot_store(self, store: SnapshotStore) -> None:
        self._travel("snapshot_store").set_store(store)

    @property
    def snapshots(self) -> list[Snapshot]:
        """The snapshots kept, oldest first (automatic ones at epoch ends, and yours)."""
        return self._travel("snapshots").store.list()

    def snapshot(self, label: str | None = None) -> Snapshot | None:
        """Take a snapshot now (None if queued for the next boundary of a training run)."""
        return self._travel("snapshot").snapshot(label)

    def rewind(
        self, snapshot: Snapshot | None = None, *, epoch: int | None = None,
        batches: int | None = None,
    ) -> Snapshot:  # fmt: skip
        """Go back to a snapshot (default the latest), the end of ``epoch``, or ``batches``
        training batches back (replayed from the last snapshot at or before); now paused.

        Returns the snapshot gone to (with ``batches``: the one replayed from)."""
        return self._travel("rewind").rewind(snapshot, epoch=epoch, batches=batches)

    def branch(self, snapshot: Snapshot | None = None, **edits: Any) -> Run:
        """A new paused Run from a snapshot with edits (``lr``, ``max_epochs``,
        ``breakpoints``, any optimizer hyperparameter); this run is not changed."""
        return self._travel("branch").branch(snapshot, **edits)

    def compare(self) -> pd.DataFrame:
        """A DataFrame: this run and its branches (and theirs), what differs, final metrics."""
        return self._travel("compare").compare()

    # -- seeing inside the model (the insight feature) ----------------------------------
    def layers(self) -> pd.DataFrame:
        """A DataFrame, one row per parameter: norms, gradient norms, the last update.

        Columns ``name, module, optimizer, shape, numel, norm, grad_norm, update_norm,
        update_ratio, nonfinite``: ‖w‖, ‖grad‖ (NaN without a gradient), ‖Δw‖ of the last
        optimizer step and ‖Δw‖/‖w‖, and the count of NaN or infinite values in the weight
        and its gradient. Norms are computed now; the update is known only for a step
        taken after a ``layers()`` call (which arms the recording until the run pauses or
        ends again) or while a view subscribes: the first call shows NaN updates, and so
        does a call after a free run nobody armed (the weights changed since the last
        recorded step). See :mod:`luzwidget.insight.layers`.
        """
        return self._insight("layers").layers()

    def activations(self) -> pd.DataFrame:
        """A DataFrame, one row per module: shape, mean, std and non-finite count of its
        last output (finite values only in mean and std), recorded by forward hooks while
        armed as :meth:`layers` is; empty until a forward pass ran after the first call."""
        return self._insight("activations").activations()

    def _travel(self, what: str) -> TravelFeature:
        travel = self.features.travel
        if travel is None:
            raise ConfigError(f"{what}: this run keeps no snapshots ({NO_FEATURES}).")
        return travel

    def _insight(self, what: str) -> InsightFeature:
        insight = self.features.insight
        if insight is None:
            raise ConfigError(f"{what}: this run has no layer views ({NO_FEATURES}).")
        return insight

    # -- for features: what they may use of a run -----------------------------------------
    @property
    def boundary(self) -> Boundary:
        """The boundary policy (for features: several processes deliver agreed commands)."""
        return self._driver.boundary

    @property
    def stepping(self) -> bool:
        """Whether the run is being stepped to a target (someone looks at each stop)."""
        return self._driver.stepping

    def submit(self, command: Callable[[], None]) -> None:
        """Call ``command`` now, or at the next event boundary while another thread (or
        several processes) drives the run; in order with the other commands."""
        self._driver.submit(command)

    def replace_loop(self, loop: Loop | None, reason: str) -> None:
        """Drop the suspended loop for ``loop`` (None: a fresh one at the next drive); the
        run is then paused, with ``reason``. For a run nothing drives."""
        self._driver.replace_loop(loop, reason)

    def drive_until(self, until: Until, breakpoints: bool = True) -> None:
        """Drive here until ``until(event)`` holds (``breakpoints=False``: none on the way)."""
        self._driver.drive_until(until, breakpoints)

    def drive_first(self, loop: Loop, last: Event) -> None:
        """Drive ``loop`` here before the rest of the run, up to its ``last`` event."""
        self._driver.drive_first(loop, last)

    def spawn(self, ctx: Context) -> Run:
        """A new run of the same kind (loop and result) over ``ctx``, equipped with features
        as this one was (``features.equip``): what a branch is made of."""
        made = type(self)(ctx, self._driver.make_loop, self._driver.finish_fn)  # type: ignore[call-arg]  # Run's
        run = cast("Run", made)
        equip = self.features.equip
        if equip is not None:
            equip(run)
        return run

"""The half of :class:`~luzwidget.control.run.Run` that faces its features (the seam).

Users call the delegating members (``run.snapshot()``, ``run.rewind()``, ``run.layers()``,
...), which hand over to the feature the composition root installed in ``run.features``
(see :mod:`luzwidget.control.features`). Features, in turn, use the few methods grouped
under "for features" below, never the driver's internals.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import torch

from luzwidget.control.boundary import Boundary
from luzwidget.control.debugging import Found, Landing
from luzwidget.control.driver import Driver
from luzwidget.control.features import NO_FEATURES, Features, InsightFeature, TravelFeature
from luzwidget.core.context import Context
from luzwidget.core.events import Event
from luzwidget.core.exceptions import ConfigError
from luzwidget.core.loop import Loop
from luzwidget.core.samples import fresh as _fresh
from luzwidget.core.samples import sample_losses
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
    event: Event | None

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

    # -- debugging backwards (the travel feature) ---------------------------------------
    def step_back(self, what: str = "batch", n: int = 1) -> Landing:
        """Go back to where a forward run stepping by ``what`` paused ``n`` times before.

        The run lands there bit for bit (weights, optimizer state, random streams, the
        data loader's position, records), paused, as if it had stepped forward to that
        place; across epoch ends and after rewinds too. It restores the latest snapshot
        or resume point before the place and replays from there, keeping resume points
        on the way so that the next step back replays about one batch.

        Parameters
        ----------
        what
            ``"batch"`` (the default): the ends of training and validation batches, where
            ``step("batch")`` pauses. ``"event"``: every event (``step()``). ``"epoch"``:
            epoch ends (``step("epoch")``).
        n
            How many of them back (default 1).

        Returns
        -------
        Landing
            What was restored, how many training batches were replayed, how long it took.

        Raises
        ------
        ConfigError
            If ``what`` or ``n`` is not what it must be, or ``n`` goes back before the start.
        RunStateError
            If the run is training (pause first) or has not started.

        Examples
        --------
        >>> run.step(n=10)
        >>> run.step_back()          # at the end of batch 9, as after run.step(n=9)
        >>> run.step_back("event")   # the event before that
        """
        return self._travel("step_back").step_back(what, n)

    def find(self, condition: Any, **options: Any) -> Found | None:
        """Pause the run at the start of the first training batch where ``condition`` held.

        The run is replayed exactly from its snapshots and left paused at that batch's
        ``on_train_batch_begin``, its context intact: step into it to see what happens.
        Only the run's past is searched (up to where it is now).

        Parameters
        ----------
        condition
            ``"nan"``: the first non-finite loss, gradient or weight;
            ``"nonfinite_loss"``, ``"nonfinite_gradients"``, ``"nonfinite_weights"``: one
            of them; ``"spike"``: a loss above ``k`` times the median of the ``window``
            batches before it; ``"biggest_spike"``: the largest such ratio; ``"loss"``
            with ``above=`` or ``below=``: the batch loss crossing a value;
            ``"<set>_<metric>"`` (``"valid_acc"``) with ``above=``/``below=``: an epoch
            metric crossing a value (the run goes to that epoch's first batch); or a
            callable taking the context, asked at ``at`` (default after each training
            loss).
        **options
            ``k`` (default 5), ``window`` (default 100), ``above``, ``below``, ``at``.

        Returns
        -------
        Found or None
            The batch, how it was found (from the loss record, from the snapshots and a
            replay, or by a replay), the batches replayed and the time; None when the
            condition never held (the run is then where it was).

        Raises
        ------
        ConfigError
            If the condition or an option is unknown or does not fit, or the run keeps no
            snapshots or loss record (a blocking ``fit()``'s).
        RunStateError
            If the run is training (pause first).

        Examples
        --------
        >>> run.find("nan")                     # where it went non-finite
        >>> run.find("biggest_spike")           # the worst loss spike
        >>> run.find("valid_acc", below=0.5)    # the epoch it collapsed
        >>> run.find(lambda ctx: ctx.loss > 3)  # any predicate (a replay of the history)
        """
        return self._travel("find").find(condition, **options)

    def sample_losses(self) -> torch.Tensor | None:
        """The loss of each sample of the current batch (float32, one per sample), or None
        before the first batch.

        Computed when asked, without gradients, from the batch's prediction when it is
        there (after ``on_train_batch_after_pred``), else from a forward pass that
        changes nothing (random streams and buffers put back): the loss function with
        ``reduction="none"`` where it has one, else called sample by sample. Dict and
        tuple batches are split by the batch rules. See :mod:`luzwidget.core.samples`.
        """
        return sample_losses(self.ctx, fresh=_fresh(self.event))

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

    def layer_history(self) -> pd.DataFrame:
        """A DataFrame, one row per layer and sampled training batch: layers over time.

        Columns ``step, epoch, batch, name, kind, module, norm, grad_norm, update_norm,
        update_ratio, act_mean, act_std, dead_frac, saturated_frac``. ``kind`` is
        ``"parameter"`` (``norm`` ‖w‖, ``grad_norm``, ``update_norm`` ‖Δw‖ of that batch's
        step and ``update_ratio`` ‖Δw‖/‖w‖) or ``"module"`` (its output's mean and std,
        the share of dead units of a ReLU-like module, of saturated outputs of a Tanh or
        Sigmoid); the other columns are NaN. Recorded while the dashboard's "Layers over
        time" panel is open, after :meth:`track_layers` (or ``fit(..., layer_history=True)``),
        and from the first call of this method on: every batch while the run is stepped,
        twice a second while it trains freely; the last 1000 samples are kept. See
        :mod:`luzwidget.insight.history`.

        Examples
        --------
        >>> run.track_layers()            # record from now on
        >>> run.start(); ...
        >>> h = run.layer_history()
        >>> h[h.kind == "parameter"].pivot(index="step", columns="name", values="update_ratio")
        """
        return self._insight("layer_history").layer_history()

    def layer_histograms(self, name: str, what: str = "acts") -> pd.DataFrame:
        """The histograms of one layer over the samples of :meth:`layer_history`.

        Parameters
        ----------
        name
            A parameter's name (``"0.weight"``) for ``"weights"`` and ``"grads"``, a
            module's (``"1"``, ``"(model)"``) for ``"acts"`` (its output).
        what
            ``"weights"``, ``"grads"`` or ``"acts"`` (default).

        Returns
        -------
        pandas.DataFrame
            One row per sample: ``step, epoch, batch, counts`` (32 counts over bins fixed at
            the layer's first sample; values outside them counted in the end bins);
            ``frame.attrs["edges"]`` holds the 33 bin edges.
        """
        return self._insight("layer_histograms").layer_histograms(name, what)

    def track_layers(self, on: bool = True, every_s: float | None = None) -> None:
        """Record :meth:`layer_history` from now on (``on=False``: stop).

        ``every_s``: while the run trains freely, at most one sampled batch this often
        (default 0.5 s; 0: every batch). A stepped run is sampled at every batch. While
        nothing records, the run pays nothing for it.
        """
        self._insight("track_layers").track_layers(on, every_s)

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

"""The seam: how features plug into a :class:`~luzwidget.control.run.Run`.

A run knows its features only through the protocols here. The composition root
(:mod:`luzwidget.session`) installs them; each feature's ``install(run, ...)`` puts itself
in ``run.features`` and its ``detach()`` takes it out again (its callbacks, listeners,
hooks and threads with it). A run without a feature says so when asked for it, naming
what would have given it one.

======================  ================================  =================================
slot                    installed by                      what the run uses it for
======================  ================================  =================================
``travel``              :mod:`luzwidget.travel`           snapshots, rewind, branch, compare,
                                                          step_back, find
``insight``             :mod:`luzwidget.insight`          ``layers()``, ``activations()``,
                                                          ``layer_history()``,
                                                          ``breakpoints.nonfinite``,
                                                          ``breakpoints.sentinel``
``instep``              :mod:`luzwidget.parallel`         the boundary policy of several
                                                          processes (relay, follow)
``serving``             :mod:`luzwidget.remote`           a blocking ``fit()`` that waits
                                                          for an attached notebook
======================  ================================  =================================

The other direction, what a feature may use of a run, is the run's public API plus the
few methods :class:`~luzwidget.control.run.Run` documents "for features" (``submit``,
``replace_loop``, ``drive_until``, ``spawn``, ``stepping``, ``boundary``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from luzwidget.control.debugging import Found, Landing
from luzwidget.core.events import Event
from luzwidget.core.exceptions import ConfigError
from luzwidget.core.states import Outcome
from luzwidget.storage.snapstore import Snapshot, SnapshotStore

if TYPE_CHECKING:
    import pandas as pd

    from luzwidget.control.boundary import Command
    from luzwidget.control.run import Run
    from luzwidget.core.context import Context

__all__ = [
    "NO_FEATURES",
    "Feature",
    "Features",
    "InStepFeature",
    "InsightFeature",
    "SentinelWatch",
    "ServingFeature",
    "TravelFeature",
    "Watch",
]


NO_FEATURES = (
    "runs made by setup(...).run(), fit() or fitted.continue_run() have them; a Run built "
    "by hand has no features"
)
"""What a refusal says when a run lacks a feature."""

_T = TypeVar("_T")


class Feature(Protocol):
    """Anything installed in a run: it can be taken out again."""

    def detach(self) -> None:
        """Take the feature out of its run (callbacks, listeners, hooks, threads)."""


class TravelFeature(Feature, Protocol):
    """Time travel: the run's snapshots, rewinds and branches."""

    @property
    def store(self) -> SnapshotStore:
        """The snapshots kept (``run.snapshot_store``)."""

    def set_store(self, store: SnapshotStore) -> None:
        """Use ``store`` from now on, the snapshots kept so far moved into it."""

    def snapshot(self, label: str | None) -> Snapshot | None:
        """A snapshot now (None: queued for the next event boundary)."""

    def rewind(
        self, snapshot: Snapshot | None, *, epoch: int | None, batches: int | None
    ) -> Snapshot:
        """Back to a snapshot, an epoch end, or ``batches`` training batches back."""

    def branch(self, snapshot: Snapshot | None, **edits: Any) -> Run:
        """A new paused run from a snapshot, with edits."""

    def compare(self) -> pd.DataFrame:
        """The run, its branches and theirs: what differs, final metrics."""

    def step_back(self, what: str, n: int) -> Landing:
        """Where a forward run stepping by ``what`` paused ``n`` times before, exactly."""

    def find(self, condition: Any, **options: Any) -> Found | None:
        """Paused at the first training batch where ``condition`` held (None: none)."""


class Watch(Protocol):
    """What ``breakpoints.nonfinite`` switches on: a check asked at every event."""

    enabled: bool

    def hit(self, event: Event, ctx: Context) -> str | None:
        """Why to pause after ``event``, or None to go on."""


class SentinelWatch(Protocol):
    """What ``breakpoints.sentinel`` is: checks for silent bugs, each a named breakpoint."""

    checks: dict[str, bool]
    pending: Any

    def enable(self, *names: str) -> None:
        """Turn checks on (``"all"``: every one)."""

    def disable(self, *names: str) -> None:
        """Turn checks off (``"all"``: every one)."""

    def hit(self, event: Event, ctx: Context) -> str | None:
        """Why to pause after ``event`` (a check found something), or None to go on."""


class InsightFeature(Feature, Protocol):
    """Seeing inside the model."""

    @property
    def sentinel(self) -> SentinelWatch:
        """The checks behind ``breakpoints.sentinel``."""

    @property
    def watch(self) -> Watch:
        """The check behind ``breakpoints.nonfinite``."""

    def layers(self) -> pd.DataFrame:
        """One row per parameter: norms, gradient norms, the last update."""

    def activations(self) -> pd.DataFrame:
        """One row per module: its last output's statistics."""

    def layer_history(self) -> pd.DataFrame:
        """One row per layer and sampled batch: norms, updates, outputs over time."""

    def layer_histograms(self, name: str, what: str) -> pd.DataFrame:
        """One row per sampled batch: the counts of one layer's histogram."""

    def track_layers(self, on: bool, every_s: float | None) -> None:
        """Record the layer history (``on``) or stop."""


class InStepFeature(Feature, Protocol):
    """Several processes, one run: the boundary policy that keeps the ranks in step."""

    @property
    def leads(self) -> bool:
        """Whether commands are taken here and relayed (rank 0) or only followed."""

    def relay(self, command: Command) -> bool:
        """Take ``command`` to apply at a boundary agreed with the other ranks (True), or
        leave it to the next event here (False)."""

    def follow(self, event: Event, outcome: Outcome | None) -> Outcome | None:
        """See (and maybe change) the decision taken at ``event``."""


class ServingFeature(Feature, Protocol):
    """The run served to notebooks in other processes."""

    def hold(self) -> bool:
        """In a blocking ``fit()`` that paused or failed: wait for a notebook to move the
        run on (True), or let the fit go on as without serving (False)."""


@dataclass
class Features:
    """The features installed in a run (``run.features``); None where there is none.

    ``equip`` is how the composition root equipped the run: a run spawned from it (a
    branch) is equipped the same way.
    """

    travel: TravelFeature | None = None
    insight: InsightFeature | None = None
    instep: InStepFeature | None = None
    serving: ServingFeature | None = None
    equip: Callable[[Run], None] | None = None

    def installed(self) -> list[str]:
        """The names of the features installed, in slot order."""
        slots = ("travel", "insight", "instep", "serving")
        return [name for name in slots if getattr(self, name) is not None]

    def require(self, slot: str, kind: type[_T], what: str) -> _T:
        """The feature in ``slot``, as the ``kind`` its installer made.

        Raises
        ------
        ConfigError
            If the slot holds no ``kind``: ``what`` (e.g. "this run keeps no snapshots")
            and which runs have one.
        """
        found = getattr(self, slot)
        if not isinstance(found, kind):
            raise ConfigError(f"{what} ({NO_FEATURES}).")
        return found

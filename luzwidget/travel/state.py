"""A run's time-travel state: its store, its family, its random streams, its rewinds.

:class:`TravelState` is what :mod:`luzwidget.travel` keeps per run, next to the run's
:class:`~luzwidget.SnapshotStore` (which keeps snapshots only). The feature installed in
``run.features.travel`` is one (:class:`luzwidget.travel.feature.TimeTravel`);
:func:`travel_of` finds it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from luzwidget.core.exceptions import ConfigError
from luzwidget.storage.snapstore import Snapshot, SnapshotStore

if TYPE_CHECKING:
    from luzwidget.control.run import Run
    from luzwidget.travel.backwards import Backwards

__all__ = ["Family", "TravelState", "travel_of"]


@dataclass(eq=False)
class Family:
    """Where a run sits among its branches: the run it was branched from (None: the
    first run), its own branches in the order they were made, and what it was branched
    from (``{"snapshot": Snapshot, "edits": {...}}``; None for the first run)."""

    parent: Run | None = None
    children: list[Run] = field(default_factory=list)
    origin: dict[str, Any] | None = None


class TravelState:
    """The time-travel state of one run.

    Attributes
    ----------
    store : SnapshotStore
        The snapshots kept.
    family : Family
        The run's parent, branches and origin.
    rng : dict or None
        The run's random streams when it last let go (several runs driven in turns).
    rewound : tuple or None
        ``(n_events, kind)`` of the last rewind, while nothing fired since.
    rewinds : int
        How many rewinds (a dashboard redraws after each).
    last_key : tuple or None
        Where the last snapshot was taken (no second snapshot of the same place).
    quiet : bool
        True while a rewind replays: no snapshots at its pauses.
    watchers : list
        Called with the snapshot after each rewind (a dashboard cuts its plots).
    backwards : Backwards or None
        What the run keeps to step back and ``find()`` (resume points, the per-batch
        loss); None without automatic snapshots (see :mod:`luzwidget.travel.backwards`).
    """

    def __init__(self, run: Run) -> None:
        self.run = run
        self.store = SnapshotStore()
        self.family = Family()
        self.rng: dict[str, Any] | None = None
        self.rewound: tuple[int, str] | None = None
        self.rewinds = 0
        self.last_key: tuple[Any, ...] | None = None
        self.quiet = False
        self.watchers: list[Callable[[Snapshot], None]] = []
        self.backwards: Backwards | None = None

    def keep(self, snap: Snapshot) -> None:
        """Add ``snap`` to the store and remember where it was taken."""
        self.store.add(snap)
        self.last_key = snap.key

    def set_store(self, store: SnapshotStore) -> None:
        """Use ``store`` from now on, the snapshots kept so far moved into it (oldest
        first, evicted or spilled by its budget)."""
        if not isinstance(store, SnapshotStore):
            raise ConfigError(
                f"snapshot_store must be a SnapshotStore, got {type(store).__name__} "
                f"{store!r}; e.g. run.snapshot_store = SnapshotStore(budget=2**30, "
                "spill_dir='snaps')."
            )
        for snap in self.store.list():
            store.add(snap)
        self.store = store


def travel_of(run: Run) -> TravelState:
    """The time-travel state of ``run`` (its ``features.travel``).

    Raises
    ------
    ConfigError
        If the run has no travel feature (a Run built by hand).
    """
    return run.features.require("travel", TravelState, "this run keeps no snapshots")

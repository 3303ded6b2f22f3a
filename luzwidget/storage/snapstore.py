"""A snapshot of a run and the bounded store that keeps a run's snapshots.

:class:`Snapshot` is the state (CPU tensors, or a spill file) and where it was taken;
:class:`SnapshotStore` bounds them by bytes, evicting (or spilling) the oldest others. It
keeps snapshots only; a run's time travel (taking them, rewinds, branches, its family) is
:class:`luzwidget.travel.feature.Travel`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from luzwidget.core.exceptions import ConfigError
from luzwidget.storage.files import read, write

__all__ = [
    "DEFAULT_BUDGET",
    "EPOCH_END",
    "INSIDE",
    "START",
    "Position",
    "Snapshot",
    "SnapshotStore",
]

DEFAULT_BUDGET = 512 * 2**20
"""The default byte budget of a run's store: 512 MiB (about 60 snapshots of a 1M-parameter
model trained with Adam: weights and two moments, 12 bytes per parameter)."""

START, EPOCH_END, INSIDE = "start", "epoch_end", "inside"

Position = tuple[int, str, int, str, Any]
"""Where inside an epoch: (epoch in progress, phase, batch, event, optimizer name)."""


@dataclass(eq=False)
class Snapshot:
    """The state of a run at one event boundary, in memory (CPU tensors) or spilled.

    Attributes
    ----------
    epoch : int
        Epochs finished when it was taken.
    iter : int
        The batch reached in the epoch's phase (0 at an epoch end or the start).
    label : str or None
        A name given by ``run.snapshot(label)``; labelled snapshots are evicted last.
    bytes : int
        The bytes its tensors hold.
    event : str or None
        The event it was taken after (None: before the run started).
    kind : str
        ``"start"``, ``"epoch_end"`` (restored directly) or ``"inside"`` (an epoch's
        start restored, then replayed to ``position``).
    seconds : float
        How long taking it took.
    batches : int or None
        Training batches done in all when it was taken (None: the loader has no length).
    position : tuple or None
        For ``"inside"``: (epoch in progress, ``"train"``/``"valid"``, batch, event, optimizer).
    path : str or None
        Where it was spilled (:class:`SnapshotStore` ``spill_dir``); its state is on disk.
    """

    epoch: int
    iter: int
    label: str | None
    bytes: int
    event: str | None
    kind: str
    seconds: float = 0.0
    state: dict[str, Any] = field(default_factory=dict, repr=False)
    run_id: int = field(default=0, repr=False)
    batches: int | None = None
    position: Position | None = field(default=None, repr=False)
    path: str | None = None

    @property
    def rewindable(self) -> bool:
        """Whether it is restored directly (a run's start or an epoch end)."""
        return self.kind in (START, EPOCH_END)

    @property
    def key(self) -> tuple[Any, ...]:
        """Where it was taken; two snapshots with one key hold the same state."""
        return (self.kind, self.epoch, self.iter, self.position, self.event)

    def load(self) -> dict[str, Any]:
        """Its state: from memory, or read back from its spill file."""
        if self.state or self.path is None:
            return self.state
        return dict(read(self.path))

    def __repr__(self) -> str:
        label = "" if self.label is None else f", label={self.label!r}"
        return f"Snapshot(epoch={self.epoch}, iter={self.iter}{label}, bytes={self.bytes})"


class SnapshotStore:
    """A run's snapshots, bounded by a byte budget.

    Parameters
    ----------
    budget
        The most bytes kept in memory (default :data:`DEFAULT_BUDGET`, 512 MiB). When a new
        snapshot goes over it, the oldest others are evicted; the first, the labelled and
        the most recent are kept (labelled ones go last, oldest first, only if nothing else
        is left).
    every
        Automatic snapshots: ``"epoch"`` (every epoch end and before every pause, the
        default), an int ``n`` (every n-th epoch end, and pauses) or None (off).
    spill_dir
        A directory: evicted snapshots are written there (atomically, one file each) and
        stay listed, read back when rewound to, instead of being dropped.
    """

    def __init__(
        self,
        budget: int = DEFAULT_BUDGET,
        every: str | int | None = "epoch",
        spill_dir: str | Path | None = None,
    ) -> None:
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
            raise ConfigError(
                f"SnapshotStore: budget must be a positive int of bytes, got {budget!r}; "
                f"e.g. budget={DEFAULT_BUDGET} (512 MiB)."
            )
        if spill_dir is not None and not isinstance(spill_dir, str | Path):
            raise ConfigError(
                f"SnapshotStore: spill_dir must be a directory path or None, got {spill_dir!r}."
            )
        self.budget = budget
        self.every = _check_every(every)
        self.spill_dir = None if spill_dir is None else Path(spill_dir)
        self.evicted = 0
        self._items: list[Snapshot] = []

    @property
    def bytes(self) -> int:
        """The bytes held in memory now."""
        return sum(s.bytes for s in self._items if s.path is None)

    def list(self) -> list[Snapshot]:
        """The snapshots kept, oldest first."""
        return list(self._items)

    def add(self, snap: Snapshot) -> None:
        """Keep ``snap``, evicting (or spilling) others to stay within the budget.

        Raises
        ------
        ConfigError
            If ``snap`` alone is bigger than the budget (nothing is evicted then).
        """
        if snap.bytes > self.budget:
            raise ConfigError(
                f"a snapshot of this run takes {snap.bytes} bytes, more than the store's budget "
                f"of {self.budget}; raise it, e.g. run.snapshot_store.budget = {2 * snap.bytes}."
            )
        self._items.append(snap)
        while self.bytes > self.budget:
            victim = self._victim()
            if victim is None:
                break
            if self.spill_dir is None:
                self._items.remove(victim)
            else:
                self._spill(victim)
            self.evicted += 1

    def _victim(self) -> Snapshot | None:
        keep = {id(self._items[0]), id(self._items[-1])}
        candidates = [s for s in self._items if id(s) not in keep and s.path is None]
        plain = [s for s in candidates if s.label is None]
        chosen = plain or candidates
        return chosen[0] if chosen else None

    def _spill(self, snap: Snapshot) -> None:
        assert self.spill_dir is not None
        name = f"snapshot-{snap.run_id:x}-{self._items.index(snap)}-e{snap.epoch}-b{snap.iter}.pt"
        snap.path = str(write(snap.state, self.spill_dir / name))
        snap.state = {}

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return (
            f"<SnapshotStore {len(self)} snapshots, {self.bytes}/{self.budget} bytes, "
            f"every={self.every!r}>"
        )


def _check_every(every: Any) -> str | int | None:
    if every is None or every == "epoch":
        return every  # type: ignore[no-any-return]
    if isinstance(every, int) and not isinstance(every, bool) and every >= 1:
        return every
    raise ConfigError(
        f"snapshot every must be 'epoch', a positive int (every n-th epoch) or None, got {every!r}."
    )

"""A snapshot of a run and the bounded store that keeps a run's snapshots.

:class:`Snapshot` is the state (CPU tensors, or a spill file) and where it was taken;
:class:`SnapshotStore` bounds them by bytes, evicting (or spilling) the oldest others. It
keeps snapshots only; a run's time travel (taking them, rewinds, branches, its family) is
:class:`luzwidget.travel.feature.Travel`.

**Spill files** (``spill_dir``): one file per evicted snapshot, written atomically, named
``snapshot-<pid>-<id>-e<epoch>-b<batch>.pt`` and holding that id, which is checked when the
file is read back (a file replaced or swapped on disk is refused, never restored). A file
lives as long as its snapshot: it is removed when the snapshot is dropped for good (the
store, the run or the snapshot garbage-collected, :meth:`SnapshotStore.close`, the
interpreter's exit). Files left by a process that died (kill -9), and half-written
temporary files, are removed when a store is next given that directory. A spill that fails
(a read-only or full disk) never stops training: it is said once, spilling stops, and the
oldest snapshots are dropped instead, as without ``spill_dir``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from luzwidget.core.exceptions import CheckpointError, ConfigError
from luzwidget.core.report import report
from luzwidget.storage.files import read, remove_orphans, write

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

SPILL_PREFIX = "snapshot-"
SPILL_KEY = "luzwidget_spill"
"""The key of a spill file's identity: the snapshot's id and where it was taken."""

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
        Where it was spilled (:class:`SnapshotStore` ``spill_dir``); its state is on disk,
        in a file removed with the snapshot.
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
    spill_id: str | None = field(default=None, repr=False)
    _spill_file: weakref.finalize[Any, Any] | None = field(default=None, init=False, repr=False)

    @property
    def rewindable(self) -> bool:
        """Whether it is restored directly (a run's start or an epoch end)."""
        return self.kind in (START, EPOCH_END)

    @property
    def key(self) -> tuple[Any, ...]:
        """Where it was taken; two snapshots with one key hold the same state."""
        return (self.kind, self.epoch, self.iter, self.position, self.event)

    def load(self) -> dict[str, Any]:
        """Its state: from memory, or read back from its spill file.

        Raises
        ------
        CheckpointError
            If the spill file is missing, unreadable, or holds another snapshot (a file
            moved, replaced or swapped on disk): nothing is restored from it.
        """
        if self.state or self.path is None:
            return self.state
        try:
            state = dict(read(self.path))
        except FileNotFoundError:
            raise CheckpointError(
                f"the spill file of {self!r} is gone ({self.path}); rewind to another snapshot "
                "(run.snapshots lists them)."
            ) from None
        found = state.pop(SPILL_KEY, None)
        if not isinstance(found, dict) or found.get("id") != self.spill_id:
            held = "no snapshot of this store"
            if isinstance(found, dict):
                held = f"the snapshot of epoch {found.get('epoch')}, batch {found.get('iter')}"
            raise CheckpointError(
                f"the spill file {self.path} holds {held}, not {self!r}: it was moved or "
                "replaced on disk, so it is not restored; rewind to another snapshot."
            )
        return state

    def forget_spill(self) -> None:
        """Remove its spill file now (the snapshot can no longer be restored)."""
        if self._spill_file is not None:
            self._spill_file()

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
        stay listed, read back when rewound to, instead of being dropped. A relative path
        is resolved when set. See the module's docstring for the files' lifetime; a spill
        that fails is said once, and the oldest snapshots are dropped instead (assign
        ``spill_dir`` again to retry).
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
        self.budget = budget
        self.every = _check_every(every)
        self._spill_dir: Path | None = None
        self.spill_error: str | None = None  # why spilling stopped (said once)
        self.spill_dir = spill_dir  # checked and resolved by the setter
        self.evicted = 0
        self._items: list[Snapshot] = []

    @property
    def spill_dir(self) -> Path | None:
        """Where evicted snapshots are written (absolute), or None: they are dropped.

        Setting it resolves a relative path, removes the files that dead processes left
        there, and turns spilling on again after a failure.
        """
        return self._spill_dir

    @spill_dir.setter
    def spill_dir(self, value: str | os.PathLike[str] | None) -> None:
        if value is not None and not isinstance(value, str | os.PathLike):
            raise ConfigError(
                f"SnapshotStore: spill_dir must be a directory path or None, got {value!r}."
            )
        self._spill_dir = None if value is None else Path(value).expanduser().resolve()
        self.spill_error = None
        if self._spill_dir is not None:
            remove_orphans(self._spill_dir, SPILL_PREFIX)

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
            if not self._spill(victim):
                self._items.remove(victim)  # dropped for good
            self.evicted += 1

    def _victim(self) -> Snapshot | None:
        keep = {id(self._items[0]), id(self._items[-1])}
        candidates = [s for s in self._items if id(s) not in keep and s.path is None]
        plain = [s for s in candidates if s.label is None]
        chosen = plain or candidates
        return chosen[0] if chosen else None

    def _spill(self, snap: Snapshot) -> bool:
        """Write ``snap`` to a file of its own; False (said once) if it cannot be."""
        directory = self._spill_dir
        if directory is None or self.spill_error is not None:
            return False
        ident = secrets.token_hex(8)
        path = directory / f"{SPILL_PREFIX}{os.getpid()}-{ident}-e{snap.epoch}-b{snap.iter}.pt"
        identity = {"id": ident, "epoch": snap.epoch, "iter": snap.iter, "kind": snap.kind}
        try:
            write({**snap.state, SPILL_KEY: identity}, path)
        except (OSError, RuntimeError) as exc:  # torch.save reports a full disk as RuntimeError
            self.spill_error = f"{type(exc).__name__}: {exc}"
            report(
                f"snapshots cannot be spilled to {directory} ({self.spill_error}); training "
                "goes on, and the oldest snapshots are dropped instead of spilled (set "
                "run.snapshot_store.spill_dir again to retry)."
            )
            return False
        snap.path, snap.spill_id, snap.state = str(path), ident, {}
        snap._spill_file = weakref.finalize(snap, _remove, str(path))
        return True

    def close(self) -> None:
        """Drop the spilled snapshots and remove their files (those in memory stay)."""
        for snap in [s for s in self._items if s.path is not None]:
            self._items.remove(snap)
            snap.forget_spill()

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return (
            f"<SnapshotStore {len(self)} snapshots, {self.bytes}/{self.budget} bytes, "
            f"every={self.every!r}>"
        )


def _remove(path: str) -> None:
    """Remove a spill file (already gone: nothing to do)."""
    with contextlib.suppress(OSError):
        os.unlink(path)


def _check_every(every: Any) -> str | int | None:
    if every is None or every == "epoch":
        return every  # type: ignore[no-any-return]
    if isinstance(every, int) and not isinstance(every, bool) and every >= 1:
        return every
    raise ConfigError(
        f"snapshot every must be 'epoch', a positive int (every n-th epoch) or None, got {every!r}."
    )

"""Going back in time: snapshots of a run in memory, rewind, and branches.

A :class:`Snapshot` holds what an exact resume needs, as :func:`~luzwidget.checkpoint.capture`
writes it for ``AutoResume`` (model, optimizers, callbacks' state, records, epoch, RNG
states), plus the context's ``opt_hparams``; every tensor is copied to the CPU, so training
on goes on without touching it. A run keeps its snapshots in a bounded
:class:`SnapshotStore` (``run.snapshot_store``).

* **Automatic**: a run built by ``setup(...).run()`` (or ``fit()``) takes one at every
  epoch end, after every other callback (``store.every = "epoch"``, the default; an int
  ``n``: every n-th epoch; None: off). A snapshot of a ready run is its start.
* **On demand**: ``run.snapshot(label)`` now (a paused run) or at the next event boundary
  (a run training in another thread, queued like an edit).
* **Rewind**: ``run.rewind(s)`` / ``run.rewind(epoch=k)`` restores a snapshot taken at an
  epoch end (or a run's start) into the same run, which is then paused; records after it
  are dropped. A later ``resume()`` with unchanged settings ends bit-identical to a run
  never rewound (every random draw, and with it the shuffled data order, is restored).
  A snapshot taken inside an epoch (a run paused mid-epoch) is kept and listed, but
  cannot be rewound to yet; ``rewind(batches=n)`` is not implemented.
* **Branch**: ``run.branch(s, lr=..., max_epochs=..., **opt_hparams)`` builds a new,
  paused Run from a snapshot with edits; model, optimizers and callbacks are copies, so
  parent and branch share no tensor. The data loaders (and loss function) are shared.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from luzwidget.callbacks.base import Callback
from luzwidget.checkpoint import capture, restore
from luzwidget.engine import Engine, engine_of
from luzwidget.events import Event
from luzwidget.exceptions import ConfigError, RunStateError
from luzwidget.loop import Loop, fit_loop
from luzwidget.report import report
from luzwidget.states import RunState

if TYPE_CHECKING:
    from luzwidget.context import Context
    from luzwidget.run import Run

__all__ = [
    "DEFAULT_BUDGET",
    "Snapshot",
    "SnapshotStore",
    "branch",
    "continued_fit",
    "install",
    "rewind",
    "store_of",
    "take",
]

DEFAULT_BUDGET = 512 * 2**20
"""The default byte budget of a run's store: 512 MiB (about 60 snapshots of a 1M-parameter
model trained with Adam: weights and two moments, 12 bytes per parameter)."""

START, EPOCH_END, INSIDE = "start", "epoch_end", "inside"


@dataclass(eq=False)
class Snapshot:
    """The state of a run at one event boundary, in memory (CPU tensors).

    Attributes
    ----------
    epoch : int
        Epochs finished when it was taken.
    iter : int
        The batch reached in the epoch (0 at an epoch end or the start).
    label : str or None
        A name given by ``run.snapshot(label)``; labelled snapshots are evicted last.
    bytes : int
        The bytes its tensors hold.
    event : str or None
        The event it was taken after (None: before the run started).
    kind : str
        ``"start"``, ``"epoch_end"`` (both can be rewound to) or ``"inside"`` (not yet).
    seconds : float
        How long taking it took.
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

    @property
    def rewindable(self) -> bool:
        """Whether :func:`rewind` can restore it (a run's start or an epoch end)."""
        return self.kind in (START, EPOCH_END)

    def __repr__(self) -> str:
        label = "" if self.label is None else f", label={self.label!r}"
        return f"Snapshot(epoch={self.epoch}, iter={self.iter}{label}, bytes={self.bytes})"


class SnapshotStore:
    """A run's snapshots, bounded by a byte budget.

    Parameters
    ----------
    budget
        The most bytes kept (default :data:`DEFAULT_BUDGET`, 512 MiB). When a new snapshot
        goes over it, the oldest others are evicted; the first, the labelled and the most
        recent are kept (labelled ones go last, oldest first, only if nothing else is left).
    every
        Automatic snapshots: ``"epoch"`` (every epoch end, the default), an int ``n`` (every
        n-th epoch end) or None (off).
    """

    def __init__(self, budget: int = DEFAULT_BUDGET, every: str | int | None = "epoch") -> None:
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
            raise ConfigError(
                f"SnapshotStore: budget must be a positive int of bytes, got {budget!r}."
            )
        self.budget = budget
        self.every = _check_every(every)
        self.evicted = 0
        self.rewound: tuple[int, str] | None = None
        self._items: list[Snapshot] = []

    @property
    def bytes(self) -> int:
        """The bytes held now."""
        return sum(s.bytes for s in self._items)

    def list(self) -> list[Snapshot]:
        """The snapshots kept, oldest first."""
        return list(self._items)

    def add(self, snap: Snapshot) -> None:
        """Keep ``snap``, evicting others to stay within the budget.

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
            self._items.remove(victim)
            self.evicted += 1

    def _victim(self) -> Snapshot | None:
        keep = {id(self._items[0]), id(self._items[-1])}
        candidates = [s for s in self._items if id(s) not in keep]
        plain = [s for s in candidates if s.label is None]
        chosen = plain or candidates
        return chosen[0] if chosen else None

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


# -- taking ------------------------------------------------------------------------------


def store_of(run: Run) -> SnapshotStore:
    """The run's store, made on first use."""
    store: SnapshotStore | None = run.__dict__.get("_snapshot_store")
    if store is None:
        store = run.__dict__["_snapshot_store"] = SnapshotStore()
    return store


_SCALARS = frozenset({type(None), bool, int, float, str})


def _to_cpu(value: Any, size: list[int] | None = None) -> Any:
    """A deep copy of a captured structure, every tensor copied (to the CPU); the bytes of
    the tensors are added to ``size[0]``."""
    kind = type(value)
    if kind in _SCALARS:
        return value  # immutable: nothing to copy
    if isinstance(value, torch.Tensor):
        out = value.detach().to("cpu", copy=True)
        if size is not None:
            size[0] += out.nelement() * out.element_size()
        return out
    if isinstance(value, dict):
        return {k: _to_cpu(v, size) for k, v in value.items()}
    if isinstance(value, list | tuple):
        if all(type(v) in _SCALARS for v in value):  # the fast path: RNG states, records
            return kind(value)
        return kind(_to_cpu(v, size) for v in value)
    return copy.deepcopy(value)


def _kind(run: Run) -> str:
    """Where the run stands: at its start, at an epoch end, or inside an epoch."""
    rewound = store_of(run).rewound  # (n_events, kind) of the last rewind
    if rewound is not None and rewound[0] == run.n_events and run.state == RunState.PAUSED:
        return rewound[1]  # nothing fired since: ``run.event`` is from before the rewind
    if run.state == RunState.DONE:
        return EPOCH_END
    if run.state == RunState.READY or run.event is None:
        return START
    if run.event in (Event.on_epoch_end, Event.on_fit_end):
        return EPOCH_END
    return INSIDE


def capture_snapshot(run: Run, label: str | None, kind: str) -> Snapshot:
    """A snapshot of ``run`` as it is now (the caller is at an event boundary)."""
    began = time.perf_counter()
    ctx = run.ctx
    size = [0]
    state = _to_cpu(capture(ctx), size)
    state["opt_hparams"] = copy.deepcopy(dict(ctx.opt_hparams))
    iter_ = 0 if kind != INSIDE else int(ctx.iter)
    epoch = int(ctx.epoch) if kind != INSIDE else int(ctx.epoch) - 1
    event = None if run.event is None or kind == START else run.event.value
    return Snapshot(
        epoch, iter_, label, size[0], event, kind,
        time.perf_counter() - began, state, id(run),
    )  # fmt: skip


def take(run: Run, label: str | None = None) -> Snapshot | None:
    """Take a snapshot now (a run nothing drives, or from the driving thread), or queue it
    for the next event boundary (a run training in another thread: then None)."""
    if label is not None and not isinstance(label, str):
        raise ConfigError(f"snapshot: label must be a str or None, got {label!r}.")
    taken: list[Snapshot] = []

    def now() -> None:
        snap = capture_snapshot(run, label, _kind(run))
        store_of(run).add(snap)
        taken.append(snap)

    run._driver.submit(now)
    return taken[0] if taken else None


class TakeSnapshots(Callback):
    """Takes the run's automatic snapshots at epoch ends, after every other callback."""

    weight = math.inf

    def __init__(self, run: Run) -> None:
        self._run = run

    def on_epoch_end(self, ctx: Context) -> None:
        store = store_of(self._run)
        every = store.every
        if every is None or (isinstance(every, int) and ctx.epoch % every):
            return
        snap = capture_snapshot(self._run, None, EPOCH_END)
        snap.event = Event.on_epoch_end.value
        try:
            store.add(snap)
        except ConfigError as exc:
            store.every = None
            report(f"automatic snapshots are now off: {exc}")

    def __repr__(self) -> str:
        return "TakeSnapshots()"


def install(run: Run) -> None:
    """Give a fit run its automatic snapshots (at epoch ends, see :class:`SnapshotStore`)."""
    store_of(run)
    run.ctx.callbacks = [*run.ctx.callbacks, TakeSnapshots(run)]


# -- rewind ------------------------------------------------------------------------------


def choose_rewindable(run: Run, snap: Snapshot | None, epoch: int | None, what: str) -> Snapshot:
    """The snapshot ``what`` (rewind, branch) goes to: of a run not training, at an epoch
    end or the start."""
    if run.state == RunState.RUNNING:
        raise RunStateError(f"{what}: the run is training; run.pause() or run.wait() first.")
    chosen = choose(run, snap, epoch, what)
    if not chosen.rewindable:
        raise ConfigError(
            f"{what}: {chosen!r} was taken inside epoch {chosen.epoch + 1} (batch {chosen.iter}); "
            "only snapshots at an epoch end or the start can be used. Use "
            f"run.{what}(epoch={chosen.epoch})."
        )
    return chosen


def choose(run: Run, snap: Snapshot | None, epoch: int | None, what: str) -> Snapshot:
    snaps = store_of(run).list()
    if snap is not None and epoch is not None:
        raise ConfigError(f"{what}: give a snapshot or epoch=, not both.")
    if snap is None and epoch is None:
        if not snaps:
            raise ConfigError(f"{what}: this run has no snapshots; take one with run.snapshot().")
        return snaps[-1]
    if snap is not None:
        if not isinstance(snap, Snapshot):
            raise ConfigError(f"{what}: expected a Snapshot from run.snapshots, got {snap!r}.")
        if snap.run_id != id(run) or all(s is not snap for s in snaps):
            raise ConfigError(
                f"{what}: {snap!r} is not a snapshot of this run (another run's, or evicted); "
                "use one from run.snapshots."
            )
        return snap
    found = [s for s in snaps if s.epoch == epoch and s.rewindable]
    if not found:
        have = sorted({s.epoch for s in snaps if s.rewindable})
        raise ConfigError(
            f"{what}: no snapshot at the end of epoch {epoch!r}; this run has epochs {have} "
            "(run.snapshots lists them)."
        )
    return found[-1]


def restore_snapshot(ctx: Context, snap: Snapshot) -> None:
    state = _to_cpu(snap.state)  # the run must never write into the snapshot's tensors
    restore(ctx, state, f"snapshot {snap!r}")
    ctx.iter = 0
    ctx.opt_hparams = state.get("opt_hparams", dict(ctx.opt_hparams))


def rewind(run: Run, snap: Snapshot | None = None, *, epoch: int | None = None) -> Snapshot:
    """Restore ``snap`` (or the last one at the end of ``epoch``) into ``run``, now paused.

    Raises
    ------
    ConfigError
        If the snapshot is another run's, evicted, or taken inside an epoch.
    RunStateError
        If the run is training (pause first).
    """
    chosen = choose_rewindable(run, snap, epoch, "rewind")
    restore_snapshot(run.ctx, chosen)
    loop = None if chosen.kind == START else continued_fit(run.ctx, engine_of(run.ctx))
    run._driver.replace_loop(loop, f"rewound to the end of epoch {chosen.epoch}")
    store_of(run).rewound = (run.n_events, chosen.kind)
    return chosen


def continued_fit(ctx: Context, engine: Engine) -> Loop:
    """The fit loop after an epoch end: the next epochs and ``on_fit_end``
    (``on_fit_begin`` already ran)."""
    return fit_loop(ctx, engine, begun=True)


def branch(run: Run, snap: Snapshot | None = None, **edits: Any) -> Run:
    """A new paused Run from a snapshot with edits; see :func:`luzwidget.branches.branch`."""
    from luzwidget.branches import branch as make_branch

    return make_branch(run, snap, **edits)

"""Going back in time: snapshots of a run in memory (and optionally on disk).

A :class:`Snapshot` holds what an exact resume needs, as
:func:`~luzwidget.storage.checkpoint.capture` writes it for ``AutoResume`` (model,
optimizers, callbacks' state, records, epoch, RNG states), plus the context's
``opt_hparams`` and where in the loop it was taken; every tensor is copied to the CPU, so
training on goes on without touching it. A run keeps its snapshots in a bounded
:class:`SnapshotStore` (``run.snapshot_store``), with its time-travel state
(:class:`~luzwidget.travel.state.TravelState`).

* **Automatic**: a run built by ``setup(...).run()`` takes one at every epoch end, after
  every other callback (``store.every = "epoch"``, the default; an int ``n``: every n-th
  epoch; None: off), and one before every pause where the run moved since the last one.
  A blocking ``fit()`` keeps none.
* **On demand**: ``run.snapshot(label)`` now (a paused run) or at the next event boundary
  (a run training in another thread, queued like an edit).
* **Rewind** and **branch** (:mod:`luzwidget.travel.replay`,
  :mod:`luzwidget.travel.branches`): back to any snapshot, also one taken inside an epoch
  (restored from the epoch's start and replayed to the same event), or ``n`` batches back.
"""

from __future__ import annotations

import copy
import math
import time
from typing import TYPE_CHECKING, Any

import torch

from luzwidget.core.callback import Callback
from luzwidget.core.events import Event
from luzwidget.core.exceptions import ConfigError
from luzwidget.core.report import report
from luzwidget.core.states import RunState
from luzwidget.storage.checkpoint import capture, get_rng_states, set_rng_states
from luzwidget.storage.snapstore import (
    DEFAULT_BUDGET,
    EPOCH_END,
    INSIDE,
    START,
    Position,
    Snapshot,
    SnapshotStore,
)
from luzwidget.travel.state import TravelState, travel_of

if TYPE_CHECKING:
    from luzwidget.control.run import Run
    from luzwidget.core.context import Context

__all__ = [
    "DEFAULT_BUDGET",
    "Snapshot",
    "SnapshotStore",
    "TakeSnapshots",
    "batches_of",
    "before_pause",
    "capture_snapshot",
    "own_rng",
    "take",
]

# -- taking ------------------------------------------------------------------------------


_SCALARS = frozenset({type(None), bool, int, float, str})


def to_cpu(value: Any, size: list[int] | None = None) -> Any:
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
        return {k: to_cpu(v, size) for k, v in value.items()}
    if isinstance(value, list | tuple):
        if all(type(v) in _SCALARS for v in value):  # the fast path: RNG states, records
            return kind(value)
        return kind(to_cpu(v, size) for v in value)
    return copy.deepcopy(value)


def _kind(run: Run) -> str:
    """Where the run stands: at its start, at an epoch end, or inside an epoch."""
    travel = run.features.travel
    rewound = travel.rewound if isinstance(travel, TravelState) else None  # the last rewind
    if rewound is not None and rewound[0] == run.n_events and run.state == RunState.PAUSED:
        return rewound[1]  # nothing fired since: ``run.event`` is from before the rewind
    if run.state == RunState.DONE:
        return EPOCH_END
    if run.state == RunState.READY or run.event is None:
        return START
    if run.event in (Event.on_epoch_end, Event.on_fit_end):
        return EPOCH_END
    return INSIDE


def phase_of(ctx: Context) -> str:
    """``"train"`` or ``"valid"``: the phase of the epoch the loop is in."""
    return "train" if ctx.data is ctx.train_data else "valid"


def train_length(ctx: Context) -> int | None:
    """Training batches per epoch (None: the loader has no length)."""
    try:
        return len(ctx.train_data)
    except TypeError:
        return None


def batches_of(run: Run, kind: str | None = None) -> int | None:
    """Training batches the run has finished in all (None: unknown, no loader length)."""
    ctx = run.ctx
    length = train_length(ctx)
    if length is None:
        return None
    if (kind or _kind(run)) != INSIDE:
        return int(ctx.epoch) * length
    done = int(ctx.iter) if phase_of(ctx) == "train" else length
    event = run.event
    if event is not None and event.in_train_batch and not event.is_batch_end:
        done -= 1  # inside a batch: not done yet
    return (int(ctx.epoch) - 1) * length + done


def _where(run: Run, kind: str) -> tuple[int, int, str | None, Position | None]:
    """(epoch, iter, event, position) of a snapshot of ``kind`` taken now."""
    ctx = run.ctx
    inside = kind == INSIDE
    iter_ = int(ctx.iter) if inside else 0
    epoch = int(ctx.epoch) - 1 if inside else int(ctx.epoch)
    event = None if run.event is None or kind == START else run.event.value
    position = None
    if inside and event is not None:
        position = (int(ctx.epoch), phase_of(ctx), iter_, event, ctx.opt_nm)
    return epoch, iter_, event, position


def capture_snapshot(run: Run, label: str | None, kind: str) -> Snapshot:
    """A snapshot of ``run`` as it is now (the caller is at an event boundary)."""
    began = time.perf_counter()
    ctx = run.ctx
    size = [0]
    state = to_cpu(capture(ctx), size)
    state["opt_hparams"] = copy.deepcopy(dict(ctx.opt_hparams))
    epoch, iter_, event, position = _where(run, kind)
    return Snapshot(
        epoch, iter_, label, size[0], event, kind, time.perf_counter() - began, state,
        id(run), batches_of(run, kind), position,
    )  # fmt: skip


def take(run: Run, label: str | None = None) -> Snapshot | None:
    """Take a snapshot now (a run nothing drives, or from the driving thread), or queue it
    for the next event boundary (a run training in another thread: then None)."""
    if label is not None and not isinstance(label, str):
        raise ConfigError(f"snapshot: label must be a str or None, got {label!r}.")
    taken: list[Snapshot] = []

    def now() -> None:
        snap = capture_snapshot(run, label, _kind(run))
        travel_of(run).keep(snap)
        taken.append(snap)

    run.submit(now)
    return taken[0] if taken else None


class TakeSnapshots(Callback):
    """Takes the run's automatic snapshots at epoch ends, after every other callback."""

    run_bound = True  # luzwidget's own, for this run only: a branch does not copy it

    weight = math.inf

    def __init__(self, run: Run) -> None:
        self._run = run

    def on_epoch_end(self, ctx: Context) -> None:
        travel = travel_of(self._run)
        every = travel.store.every
        if every is None or (isinstance(every, int) and ctx.epoch % every):
            return
        snap = capture_snapshot(self._run, None, EPOCH_END)
        snap.event = Event.on_epoch_end.value
        _add_automatic(travel, snap)

    def __repr__(self) -> str:
        return "TakeSnapshots()"


def _add_automatic(travel: TravelState, snap: Snapshot) -> None:
    try:
        travel.keep(snap)
    except ConfigError as exc:
        travel.store.every = None
        report(f"automatic snapshots are now off: {exc}")


def before_pause(run: Run) -> None:
    """Run listener: a snapshot where the run paused, unless it holds what the last did;
    and one of the run's start when it is first driven (a branch has its snapshot)."""
    travel = travel_of(run)
    store = travel.store
    if store.every is None or travel.quiet:
        return
    if run.state == RunState.RUNNING and not store.list() and travel.family.origin is None:
        _add_automatic(travel, capture_snapshot(run, None, START))  # the first drive: the start
        return
    if run.state != RunState.PAUSED:
        return
    kind = _kind(run)
    if kind == START:
        return
    epoch, iter_, event, position = _where(run, kind)
    if (kind, epoch, iter_, position, event) != travel.last_key:
        _add_automatic(travel, capture_snapshot(run, None, kind))


class _Generators:
    """Whose random streams the process's generators hold now (a run's id; 0: nobody's)."""

    owner = 0


def own_rng(run: Run) -> None:
    """Run listener: each run draws from its own random streams. When it lets go (pauses,
    fails, ends), its generators' states are kept; when it is driven again after another
    run was, they are put back. So runs driven in turns (a parent and its branches) each
    train as they would alone; runs training at the same time in two threads share the
    process's generators and are not reproducible."""
    travel = travel_of(run)
    if run.state == RunState.RUNNING:
        if _Generators.owner != id(run) and travel.rng is not None:
            set_rng_states(travel.rng)
    else:
        travel.rng = get_rng_states()
    _Generators.owner = id(run)

"""Resume points: a run restored directly between two training batches, no replay needed.

A snapshot inside an epoch is otherwise restored from the epoch's start and replayed to
its event (:mod:`luzwidget.travel.replay`), because the loop's position cannot be stored.
A :class:`ResumePoint` stores what it takes to go on from the end of training batch
``k`` instead: a snapshot (weights, optimizers, records, callbacks' ``state_dict``, RNG)
plus :class:`Extra`, the epoch's data position (an in-memory loader's drawn order, shared;
or, for a DataLoader, the random state its epoch began with, from which the sampler draws
the same order again, its first ``k`` batches drawn but not loaded), the state of the
loader's own generators, copies of the callbacks' attributes (the epoch's metric sums,
whatever a callback keeps between batches), the modules' train/eval modes and the batches
skipped so far. :func:`restore_point` loads them and hands the run a fit loop that goes on
with batch ``k + 1`` (:class:`~luzwidget.core.loop.Inside`); driving it from there gives,
bit for bit, what the run gave the first time.

Points are taken where that holds: after ``on_train_batch_end`` of a fit that steps every
batch (no ``accumulate``), in one process, over an in-memory loader or a DataLoader of a
map-style Dataset with ``num_workers=0``, and only when the callbacks' attributes can be
copied. Elsewhere stepping back replays from the epoch's start, as a rewind does.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from luzwidget.callbacks.progress import Progress
from luzwidget.core.callback import Callback, is_run_bound
from luzwidget.core.engine import engine_of
from luzwidget.core.epochs import advanced, sampled
from luzwidget.core.events import Event
from luzwidget.core.generators import generator_states, set_generator_states
from luzwidget.core.index_loader import IndexLoader
from luzwidget.core.loop import Inside, fit_loop
from luzwidget.core.rebatch import batch_size_of, set_batch_size
from luzwidget.storage.snapstore import INSIDE, Snapshot
from luzwidget.travel.replay import restore_snapshot
from luzwidget.travel.snapshots import capture_snapshot, phase_of
from luzwidget.travel.state import travel_of

if TYPE_CHECKING:
    from luzwidget.control.run import Run
    from luzwidget.core.context import Context

__all__ = ["EpochStart", "Extra", "ResumePoint", "point_now", "restore_point"]


@dataclass(eq=False)
class Extra:
    """What a direct restore needs beyond a snapshot (see the module's docstring)."""

    epoch: int
    iter: int
    owners: list[Any]
    attributes: Any  # (a copy of each owner's __dict__, of ctx.metrics)
    modes: list[bool]
    skipped: list[int]
    loader: Any  # an IndexLoader epoch (a clone), or (torch RNG, generators) of its start
    generators: list[torch.Tensor]
    bytes: int = 0
    batch_size: int | None = None  # the training loader's (run.edit("batch_size") changes it)


@dataclass(eq=False)
class ResumePoint:
    """A snapshot at a training batch's end and what restores it directly.

    ``own``: the snapshot is the point's (counted in its cache's budget), not one the
    run's store keeps anyway (a pause's).
    """

    snap: Snapshot
    extra: Extra
    own: bool = True
    taken: float = field(default_factory=time.perf_counter)

    @property
    def batches(self) -> int:
        """Training batches done at the point."""
        return int(self.snap.batches or 0)

    @property
    def bytes(self) -> int:
        """What it holds in memory: its snapshot (if its own) and the copies of ``extra``."""
        return (self.snap.bytes if self.own else 0) + self.extra.bytes


class EpochStart(Callback):
    """Keeps the random state each training pass begins with (a DataLoader's epoch is
    drawn from it), after every other callback of ``on_train_begin``."""

    run_bound = True
    weight = float("inf")

    def __init__(self) -> None:
        self.epoch = -1
        self.state: tuple[torch.Tensor, list[torch.Tensor]] | None = None

    def on_train_begin(self, ctx: Context) -> None:
        if sampled(ctx.train_data):
            self.epoch = int(ctx.epoch)
            self.state = (torch.get_rng_state(), generator_states(ctx.train_data))

    def __repr__(self) -> str:
        return "EpochStart()"


def _memo(run: Run) -> dict[int, Any]:
    """What the callbacks' copies share with the run instead of copying it."""
    ctx = run.ctx
    engine = engine_of(ctx)
    shared: list[Any] = [run, ctx, engine, engine.values, ctx.train_data, ctx.valid_data]
    shared += [ctx.accelerator, ctx.loss_fn, *ctx.callbacks, *ctx.optimizers.values()]
    model = ctx.model
    if model is not None:
        shared += [*model.modules(), *model.parameters(), *model.buffers()]
    return {id(obj): obj for obj in shared if obj is not None}


def _copied(run: Run, attributes: Any) -> Any:
    return copy.deepcopy(attributes, _memo(run))


def _tensor_bytes(value: Any, seen: set[int], depth: int = 0) -> int:
    if depth > 6 or id(value) in seen:
        return 0
    seen.add(id(value))
    if isinstance(value, torch.Tensor):
        return value.nelement() * value.element_size()
    if isinstance(value, dict):
        return sum(_tensor_bytes(v, seen, depth + 1) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(_tensor_bytes(v, seen, depth + 1) for v in value)
    inner = getattr(value, "__dict__", None)
    return 0 if inner is None else _tensor_bytes(inner, seen, depth + 1)


def _loader_position(run: Run) -> Any:
    """The data position of the pass under way, or None where it cannot be restored."""
    ctx, engine = run.ctx, engine_of(run.ctx)
    source = engine.source
    state = None if source is None else source.state
    loader = getattr(ctx.train_data, "loader", ctx.train_data)
    if isinstance(loader, IndexLoader) and hasattr(state, "clone"):
        return state.clone()  # type: ignore[union-attr]  # an IndexLoader epoch
    starts = [cb for cb in ctx.callbacks if isinstance(cb, EpochStart)]
    if sampled(ctx.train_data) and starts and starts[0].epoch == ctx.epoch:
        return starts[0].state
    return None


def _restorable_here(run: Run) -> bool:
    ctx = run.ctx
    return (
        run.event is Event.on_train_batch_end
        and phase_of(ctx) == "train"
        and ctx.accumulate == 1
        and ctx.world_size == 1
        and ctx.model is not None
    )


def point_now(run: Run, snap: Snapshot | None = None) -> ResumePoint | None:
    """A resume point of ``run`` where it is now (at an event boundary, nothing driving
    it or on the driving thread), or None where it cannot be restored directly.

    ``snap``: a snapshot just taken of this very place (a pause's), shared, not copied.
    """
    if not _restorable_here(run):
        return None
    position = _loader_position(run)
    if position is None:
        return None
    ctx = run.ctx
    owners = [cb for cb in ctx.callbacks if not is_run_bound(cb) and not isinstance(cb, Progress)]
    try:
        attributes = _copied(run, ([dict(vars(cb)) for cb in owners], dict(ctx.metrics)))
    except Exception:  # a callback holding what cannot be copied: replay instead
        return None
    own = snap is None
    if snap is None:
        snap = capture_snapshot(run, None, INSIDE)
    model = ctx.model
    extra = Extra(
        epoch=int(ctx.epoch),
        iter=int(ctx.iter),
        owners=owners,
        attributes=attributes,
        modes=[m.training for m in model.modules()],
        skipped=list(engine_of(ctx).skipped),
        loader=position,
        generators=generator_states(ctx.train_data),
        batch_size=batch_size_of(ctx.train_data),
    )
    extra.bytes = _tensor_bytes(attributes, set())
    return ResumePoint(snap, extra, own)


def restore_point(run: Run, point: ResumePoint, reason: str) -> None:
    """Put ``run`` (nothing driving it) at ``point``: paused, its loop going on with the
    next training batch."""
    ctx, extra = run.ctx, point.extra
    engine = engine_of(ctx)
    set_batch_size(ctx, extra.batch_size)  # the epoch's own, before its order is drawn again
    loader = ctx.train_data
    if isinstance(extra.loader, tuple):  # a DataLoader: its epoch drawn again, k batches on
        rng, generators = extra.loader
        torch.set_rng_state(rng)
        set_generator_states(loader, generators)
        batches, state, limit = advanced(loader, extra.iter)
        for start in (cb for cb in ctx.callbacks if isinstance(cb, EpochStart)):
            start.epoch, start.state = extra.epoch, extra.loader
    else:
        state = extra.loader.clone()
        batches, limit = state, ""
    restore_snapshot(ctx, point.snap)  # weights, optimizers, records, state_dicts, RNG
    set_generator_states(loader, extra.generators)
    attributes, metrics = _copied(run, extra.attributes)
    for owner, kept in zip(extra.owners, attributes, strict=True):
        vars(owner).clear()
        vars(owner).update(kept)
    ctx.metrics = metrics
    for module, mode in zip(ctx.model.modules(), extra.modes, strict=False):
        module.training = mode
    ctx.epoch = extra.epoch
    ctx.iter = extra.iter
    ctx.data = loader
    ctx.training = True
    inside = Inside(batches, state, extra.iter, limit, extra.skipped)
    travel = travel_of(run)
    travel.quiet = True  # the settling pause is at the point: no snapshot of it
    try:
        run.replace_loop(fit_loop(ctx, engine, begun=True, inside=inside), reason)
    finally:
        travel.quiet = False
    travel.rewound = (run.n_events, INSIDE)
    travel.last_key = point.snap.key

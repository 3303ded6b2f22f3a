"""Rewind: a run back to one of its snapshots, exactly, also inside an epoch.

A snapshot at a run's start or an epoch end is restored directly and the fit loop goes on
with the next epoch. Inside an epoch the loop's position (the data iterator, the
generators' frames) cannot be stored, so a rewind there restores the epoch's start and
replays the run forward, breakpoints off, to the same event: with unchanged settings every
random draw (dropout, the shuffled order) repeats, so the run lands exactly where it was
(if settings were edited after the epoch began, the replay differs, and ``run.notice`` says so).
``rewind(batches=n)`` goes to the last snapshot at or before ``n`` training batches back
and replays from there. Records after the target are dropped; a later ``resume()`` ends
bit-identical to a run never rewound.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from luzwidget.core.compiled import original
from luzwidget.core.engine import Engine, engine_of
from luzwidget.core.events import Event
from luzwidget.core.exceptions import ConfigError, RunStateError
from luzwidget.core.loop import Loop, fit_loop
from luzwidget.core.report import report
from luzwidget.core.states import RunState
from luzwidget.storage.checkpoint import restore
from luzwidget.storage.snapstore import START, Position, Snapshot
from luzwidget.travel.snapshots import batches_of, phase_of, to_cpu, train_length
from luzwidget.travel.state import travel_of

if TYPE_CHECKING:
    from luzwidget.control.run import Run
    from luzwidget.core.context import Context

__all__ = ["base_of", "choose", "continued_fit", "put_back", "replay", "restore_snapshot", "rewind"]


def choose(run: Run, snap: Snapshot | None, epoch: int | None, what: str) -> Snapshot:
    """The snapshot ``what`` (rewind, branch) goes to: ``snap``, the last at the end of
    ``epoch``, or (neither) the latest."""
    snaps = travel_of(run).store.list()
    if snap is not None and epoch is not None:
        raise ConfigError(f"{what}: give a snapshot or epoch=, not both.")
    if snap is None and epoch is None:
        if not snaps:
            raise ConfigError(f"{what}: this run has no snapshots; take one with run.snapshot().")
        return snaps[-1]
    if snap is not None:
        if not isinstance(snap, Snapshot):
            raise ConfigError(
                f"{what}: expected a Snapshot from run.snapshots, got {type(snap).__name__} "
                f"{snap!r}."
            )
        if snap.run_id != id(run) or all(s is not snap for s in snaps):
            raise ConfigError(
                f"{what}: {snap!r} is not a snapshot of this run (another run's, or evicted); "
                "use one from run.snapshots (a branch has its own: branch.snapshots)."
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


def base_of(run: Run, snap: Snapshot) -> Snapshot:
    """The snapshot a rewind restores first: ``snap`` itself, or its epoch's start."""
    if snap.rewindable:
        return snap
    bases = [s for s in travel_of(run).store.list() if s.rewindable and s.epoch == snap.epoch]
    if not bases:
        raise ConfigError(
            f"{snap!r} was taken inside epoch {snap.epoch + 1}, and the snapshot of that "
            f"epoch's start (the end of epoch {snap.epoch}) was evicted, so the run cannot "
            "be replayed to it; raise run.snapshot_store.budget, or use a snapshot at an "
            "epoch end (run.snapshots lists them)."
        )
    return bases[-1]


def restore_snapshot(ctx: Context, snap: Snapshot) -> None:
    """Load ``snap`` into ``ctx`` (copied: the run never writes into the snapshot)."""
    state = to_cpu(snap.load())
    restore(ctx, state, f"snapshot {snap!r}")
    ctx.iter = 0
    ctx.opt_hparams = state.get("opt_hparams", dict(ctx.opt_hparams))


def continued_fit(ctx: Context, engine: Engine) -> Loop:
    """The fit loop after an epoch end: the next epochs and ``on_fit_end``
    (``on_fit_begin`` already ran)."""
    return fit_loop(ctx, engine, begun=True)


def put_back(run: Run, base: Snapshot, reason: str) -> None:
    """Restore ``base`` (a start or an epoch end) into ``run``, now paused there."""
    restore_snapshot(run.ctx, base)
    loop = None if base.kind == START else continued_fit(run.ctx, engine_of(run.ctx))
    travel = travel_of(run)
    travel.quiet = True  # the settling pause is at ``base``: no snapshot of it
    try:
        run.replace_loop(loop, reason)
    finally:
        travel.quiet = False
    travel.rewound = (run.n_events, base.kind)
    travel.last_key = base.key


def rewind(
    run: Run,
    snap: Snapshot | None = None,
    *,
    epoch: int | None = None,
    batches: int | None = None,
) -> Snapshot:
    """Move ``run`` back to ``snap`` (default the latest snapshot), to the end of ``epoch``,
    or ``batches`` training batches back; the run is then paused there.

    Returns
    -------
    Snapshot
        The snapshot gone to (with ``batches``: the one replayed from).

    Raises
    ------
    ConfigError
        If the snapshot is another run's or evicted, no snapshot is early enough, or the
        arguments do not go together.
    RunStateError
        If the run is training (pause first).
    """
    if run.state == RunState.RUNNING:
        raise RunStateError("rewind: the run is training; run.pause() and run.wait() first.")
    if batches is not None:
        if snap is not None or epoch is not None:
            raise ConfigError("rewind: give a snapshot, epoch= or batches=, only one.")
        return _rewind_batches(run, batches)
    chosen = choose(run, snap, epoch, "rewind")
    base = base_of(run, chosen)
    where = f"the end of epoch {base.epoch}" if base.kind != START else "the start"
    put_back(run, base, f"rewound to {where}")
    if chosen is not base:
        assert chosen.position is not None
        replay(run, chosen.position, f"rewound to {_at(chosen.position)}")
        check_replayed(run, chosen)
        travel_of(run).last_key = chosen.key
    _rewound(run, chosen)
    return chosen


def _rewind_batches(run: Run, batches: Any) -> Snapshot:
    if isinstance(batches, bool) or not isinstance(batches, int) or batches < 0:
        raise ConfigError(f"rewind: batches must be an int >= 0 (how many back), got {batches!r}.")
    length, now = train_length(run.ctx), batches_of(run)
    if length is None or now is None:
        raise ConfigError(
            "rewind: batches= needs the training loader's length (len(train_data)), and this "
            "one has none; rewind to a snapshot or epoch= instead."
        )
    target = now - batches
    if target < 0:
        raise ConfigError(
            f"rewind: batches={batches} goes back before the start; the run has trained "
            f"{now} batches, so batches can be at most {now}."
        )
    bases = [s for s in travel_of(run).store.list() if s.rewindable and (s.batches or 0) <= target]
    if not bases:
        raise ConfigError(
            f"rewind: no snapshot at or before batch {target} ({batches} back from {now}); "
            "the earliest is later (run.snapshots lists them)."
        )
    base = max(bases, key=lambda s: s.batches or 0)
    put_back(run, base, f"rewound to the end of epoch {base.epoch}")
    if target > (base.batches or 0):
        epoch = (target - 1) // length + 1
        position = (epoch, "train", target - (epoch - 1) * length, "on_train_batch_end", None)
        replay(run, position, f"rewound {batches} batches back")
    _rewound(run, base)
    return base


def _rewound(run: Run, snap: Snapshot) -> None:
    """Count the rewind and tell the store's watchers (a dashboard cuts its plots)."""
    travel = travel_of(run)
    travel.rewinds += 1
    for watcher in list(travel.watchers):
        try:
            watcher(snap)
        except Exception as exc:  # a view's bug must not break the rewind
            report("a rewind watcher failed", error=exc)


def check_replayed(run: Run, snap: Snapshot) -> None:
    """Say so when the replay did not reach ``snap``'s weights (settings were edited since
    its epoch began: the replay used the epoch start's). Loading them over instead would
    break a batch in progress (its autograd graph holds the weights)."""
    saved = snap.load().get("model", {})
    now = original(run.ctx.model).state_dict()  # keys as captured: no DDP/compile prefix
    same = saved.keys() == now.keys() and all(
        torch.equal(saved[k], now[k].detach().cpu()) for k in saved
    )
    if not same:
        run.notice = (
            f"the replay to {snap!r} did not reach its weights: settings were edited after its "
            "epoch began, and the replay used the epoch start's; the run is at the replay."
        )
        report(run.notice)


def _at(position: Position) -> str:
    epoch, phase, iter_, event, _ = position
    return f"{event} (epoch {epoch}, {phase} batch {iter_})"


def replay(run: Run, position: Position, reason: str) -> None:
    """Drive ``run`` here, without breakpoints or pause snapshots, to ``position``."""
    ctx, travel = run.ctx, travel_of(run)
    epoch, phase, iter_, event, opt_nm = position

    def there(fired: Event) -> bool:
        return (
            fired.value == event
            and ctx.epoch == epoch
            and ctx.iter == iter_
            and phase_of(ctx) == phase
            and (opt_nm is None or ctx.opt_nm == opt_nm)
        )

    travel.quiet = True
    try:
        run.drive_until(there, breakpoints=False)
    finally:
        travel.quiet = False
    landed = run.state == RunState.PAUSED and run.event is not None and there(run.event)
    if not landed:
        raise RunStateError(
            f"rewind: the replay to {_at(position)} stopped at {run.event} ({run.state}: "
            f"{run.reason}); the run is there now. run.rewind(epoch=...) goes to an epoch end."
        )
    run.reason = reason
    travel.rewound = None

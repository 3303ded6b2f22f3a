"""``run.step_back()``: the run where a forward run stepping the same way would have paused
one batch (event, epoch) earlier, bit for bit: weights, optimizer state, random streams,
the data loader's position, records and callbacks' state.

Going back is a landing (:mod:`luzwidget.travel.landing`): the latest snapshot or resume
point before the place, replayed to it. What makes the next step back cheap is kept on
the way: resume points at the last batches before the place (as many as a quarter of the
store's budget holds, at most :data:`~luzwidget.travel.landing.DENSE`), so stepping back
batch after batch replays one batch each time; pausing at a batch's end while stepping
forward keeps one too (from the snapshot the pause takes anyway).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from luzwidget.core.events import Event
from luzwidget.core.exceptions import ConfigError, RunStateError
from luzwidget.core.states import RunState
from luzwidget.storage.snapstore import Position
from luzwidget.travel.landing import Landing, drive_to, land, restore_before
from luzwidget.travel.positions import BatchEnds, current, here, key

if TYPE_CHECKING:
    from luzwidget.control.run import Run

__all__ = ["WHAT", "step_back"]

WHAT = ("batch", "event", "epoch")
"""What ``step_back`` steps over."""


def step_back(run: Run, what: str = "batch", n: int = 1) -> Landing:
    """See :meth:`luzwidget.Run.step_back`."""
    if what not in WHAT:
        raise ConfigError(f"step_back: what must be one of {', '.join(WHAT)}, got {what!r}.")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"step_back: n must be an int >= 1 (how many back), got {n!r}.")
    if run.state == RunState.RUNNING:
        raise RunStateError("step_back: the run is training; run.pause() and run.wait() first.")
    if current(run) is None or run.state == RunState.READY:
        raise RunStateError("step_back: the run has not started; there is nothing before it.")
    plural = what if n == 1 else ("batches" if what == "batch" else f"{what}s")
    if what == "batch":
        target = _batch_target(run, n)
    elif what == "epoch":
        target = _epoch_target(run, n)
    else:
        target = _event_target(run, n)
    return land(run, target, f"stepped back {n} {plural} to {_shown(target)}")


def _shown(target: Position) -> str:
    epoch, phase, iter_, event, _ = target
    if Event(event).in_batch:
        return f"{event} (epoch {epoch}, {phase} batch {iter_})"
    return f"{event} (epoch {epoch})"


def _batch_target(run: Run, n: int) -> Position:
    ends = BatchEnds.of(run, "step_back")
    last, exact = ends.last_at(run)
    number = last - n if exact else last - (n - 1)
    if number < 1:
        raise ConfigError(
            f"step_back: n={n} goes back before the first batch; {last} batch end(s) are behind "
            f"the run, so n can be at most {last - (1 if exact else 0)}."
        )
    return ends.position(number)


def _epoch_target(run: Run, n: int) -> Position:
    epoch, event = int(run.ctx.epoch), current(run)
    at_end = event is Event.on_epoch_end
    done = epoch if at_end or (event is not None and not event.in_epoch) else epoch - 1
    target = done - n if at_end else done - (n - 1)
    if target < 1:
        raise ConfigError(
            f"step_back: n={n} epochs goes back before the first epoch's end; the run has "
            f"finished {done} epoch(s) here."
        )
    return (target, "train", 0, Event.on_epoch_end.value, None)


def _event_target(run: Run, n: int) -> Position:
    """The ``n``-th event before the current one: the events from an earlier base to here
    are replayed and counted (earlier bases until enough are behind)."""
    now = here(run)
    assert now is not None
    names = list(run.ctx.optimizers)
    limit = key(now, names)
    reason = f"stepping back {n} event(s)"
    while True:
        seen: list[Position] = []

        def note(_: Event, seen: list[Position] = seen) -> bool:
            position = here(run)
            if position is not None:
                seen.append(position)
            return False

        base = restore_before(run, now, reason, limit=limit)
        drive_to(run, now, watch=note)
        if len(seen) > n:
            return seen[-1 - n]
        if base.batches == 0 and base.what == "the start":
            raise ConfigError(
                f"step_back: n={n} events goes back before the run's first event; "
                f"{len(seen) - 1} event(s) are behind it."
            )
        limit = base.key

"""Where a run is in its loop, and the order of those places: what stepping back and
``find()`` count in.

A :data:`~luzwidget.storage.snapstore.Position` is ``(epoch in progress, phase, batch,
event, optimizer name)``, as rewinds use it. :func:`here` reads the run's; :func:`key`
orders them as the loop reaches them (so a replay can tell it went past its target);
:class:`Sequence` numbers the pauses a run stepping by batch makes (every training and
validation batch end) from the loaders' lengths.
"""

from __future__ import annotations

from collections.abc import Sequence as Seq
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from luzwidget.core.data import loader_len
from luzwidget.core.events import Event
from luzwidget.core.exceptions import ConfigError
from luzwidget.core.states import RunState
from luzwidget.storage.snapstore import START, Position
from luzwidget.travel.snapshots import phase_of, train_length
from luzwidget.travel.state import travel_of

if TYPE_CHECKING:
    from luzwidget.control.run import Run

__all__ = ["BatchEnds", "batch_begin", "batch_end", "current", "here", "key", "same"]

E = Event
_SECTIONS = {
    E.on_epoch_begin: 0,
    E.on_train_begin: 1,
    E.on_train_end: 3,
    E.on_valid_begin: 4,
    E.on_valid_end: 6,
    E.on_epoch_end: 7,
}
_LAST = 1 << 30


def current(run: Run) -> Event | None:
    """The event ``run`` is after: ``run.event``, but ``on_fit_end`` for a finished run,
    the failed event after an error, ``on_epoch_end`` after a rewind to an epoch end (a
    free run yields no event, so ``run.event`` may be from long before); None before the
    run started (or rewound to its start)."""
    state = run.state
    if state == RunState.DONE:
        return E.on_fit_end
    if state == RunState.ERROR:
        failed = getattr(run.error, "event", None)
        if isinstance(failed, Event):
            return failed
    rewound = travel_of(run).rewound
    if rewound is not None and rewound[0] == run.n_events and state == RunState.PAUSED:
        return None if rewound[1] == START else E.on_epoch_end
    return run.event


def here(run: Run) -> Position | None:
    """Where ``run`` is: the event it is after and the context (None before any event)."""
    event = current(run)
    if event is None:
        return None
    ctx = run.ctx
    return (int(ctx.epoch), phase_of(ctx), int(ctx.iter), event.value, ctx.opt_nm)


def key(position: Position, optimizers: Seq[Any] = ()) -> tuple[int, ...]:
    """A sort key: positions in the order the fit loop reaches them (``optimizers``: the
    names in the order they step within a batch)."""
    epoch, _, iter_, name, opt = position
    event = E(name)
    if event is E.on_fit_begin:
        return (-1,)
    if not event.in_epoch:  # the fit's end, early stopping, an interrupt
        return (_LAST,)
    if not event.in_batch:
        return (epoch, _SECTIONS[event])
    section = 2 if event.in_train_batch else 5
    if event.is_batch_begin:
        return (epoch, section, iter_, -1)
    if event.is_batch_end:
        return (epoch, section, iter_, _LAST)
    index = list(optimizers).index(opt) if opt in optimizers else 0
    return (epoch, section, iter_, index, list(E).index(event))


def same(position: Position, fired: Event, ctx: Any) -> bool:
    """Whether the loop, having fired ``fired`` with ``ctx``, is at ``position`` (an
    optimizer of None matches any; the batch is not compared at an epoch's own events,
    where ``ctx.iter`` still holds the last pass's count)."""
    epoch, phase, iter_, name, opt = position
    if fired.value != name or ctx.epoch != epoch:
        return False
    if not fired.in_batch:
        return True
    return ctx.iter == iter_ and phase_of(ctx) == phase and (opt is None or ctx.opt_nm == opt)


def batch_begin(epoch: int, iter_: int) -> Position:
    """The start of training batch ``iter_`` of ``epoch``."""
    return (epoch, "train", iter_, E.on_train_batch_begin.value, None)


def batch_end(epoch: int, phase: str, iter_: int) -> Position:
    """The end of batch ``iter_`` of ``epoch``'s ``phase`` (``"train"`` or ``"valid"``)."""
    event = E.on_train_batch_end if phase == "train" else E.on_valid_batch_end
    return (epoch, phase, iter_, event.value, None)


@dataclass(frozen=True)
class BatchEnds:
    """The batch ends of a fit, numbered 1, 2, ... in the order they come: each epoch's
    ``train`` training batches, then its ``valid`` validation batches."""

    train: int
    valid: int

    @classmethod
    def of(cls, run: Run, what: str) -> BatchEnds:
        """The numbering of ``run``'s loaders (their lengths), or ConfigError naming
        ``what`` needs them."""
        ctx = run.ctx
        train = train_length(ctx)
        valid = 0 if ctx.valid_data is None else loader_len(ctx.valid_data)
        if not train or valid is None:
            raise ConfigError(
                f"{what} counts batches by the loaders' lengths, and this run's training or "
                "validation loader has none (len() fails); rewind to a snapshot instead."
            )
        return cls(train, valid)

    @property
    def per_epoch(self) -> int:
        """Batch ends in an epoch."""
        return self.train + self.valid

    def number(self, epoch: int, phase: str, iter_: int) -> int:
        """The number of the end of batch ``iter_`` of ``epoch``'s ``phase``."""
        before = (epoch - 1) * self.per_epoch
        return before + (iter_ if phase == "train" else self.train + iter_)

    def position(self, number: int) -> Position:
        """The batch end numbered ``number`` (>= 1)."""
        epoch = (number - 1) // self.per_epoch + 1
        within = number - (epoch - 1) * self.per_epoch
        if within <= self.train:
            return batch_end(epoch, "train", within)
        return batch_end(epoch, "valid", within - self.train)

    def last_at(self, run: Run) -> tuple[int, bool]:
        """``(number, exact)``: the last batch end at or before where ``run`` is, and
        whether the run is at that very event."""
        event, ctx = current(run), run.ctx
        epoch, iter_ = int(ctx.epoch), int(ctx.iter)
        if event is None or event is E.on_fit_begin:
            return 0, False
        if event.in_batch:
            phase = "train" if event.in_train_batch else "valid"
            if event.is_batch_end:
                return self.number(epoch, phase, iter_), True
            return self.number(epoch, phase, iter_ - 1), False
        if not event.in_epoch:  # the end of the fit: after the last epoch run
            return epoch * self.per_epoch, False
        section = _SECTIONS[event]
        if section <= 1:
            return (epoch - 1) * self.per_epoch, False
        if section <= 4:
            return self.number(epoch, "train", self.train), False
        return epoch * self.per_epoch, False

"""What a drive aims at and how it ends: run states, outcomes and step targets.

:class:`RunState` is what ``run.state`` holds; :class:`Outcome` is what one drive of the
loop ends with (the driver settles the run in it); :func:`stop_condition` turns
``step``/``start(until=...)`` arguments into the target a drive stops at.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from luzwidget.core.events import Event
from luzwidget.core.exceptions import ConfigError

__all__ = ["Outcome", "RunState", "Until", "stop_condition"]

Until = Callable[[Event], bool]


class RunState(StrEnum):
    """What a run is doing; equal to its value, so ``run.state == "paused"`` works."""

    READY = "ready"
    RUNNING = "running"
    PAUSED = "paused"
    ERROR = "error"
    DONE = "done"

    def __repr__(self) -> str:  # shown as the plain string it was before it was an enum
        return repr(self.value)


@dataclass(frozen=True)
class Outcome:
    """How one drive ended: the state to settle in, why, and whether Ctrl-C did it."""

    state: RunState
    reason: str = ""
    interrupted: bool = False


_OR_USE = "Or use 'batch' or 'epoch'."
_BATCH_ENDS = frozenset(e for e in Event if e.is_batch_end)


def stop_condition(what: Event | str | None = None, n: int = 1) -> Until:
    """A stop condition for stepping: true after the ``n``-th matching event.

    Parameters
    ----------
    what
        None or ``"event"``: any event. ``"batch"``: the end of a batch (training, validation or
        prediction). ``"epoch"``: ``on_epoch_end``. An event or its name: that event.
    n
        How many matches to wait for (int >= 1).

    Raises
    ------
    ConfigError
        If ``n`` is not an int >= 1 or ``what`` names nothing known.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"n must be an int >= 1 (how many to step), got {n!r}.")
    targets: frozenset[Event] | None
    if what is None or what == "event":
        targets = None
    elif what == "batch":
        targets = _BATCH_ENDS
    elif what == "epoch":
        targets = frozenset({Event.on_epoch_end})
    else:
        targets = frozenset({Event.parse(what, argument="what", hint=_OR_USE)})
    left = n

    def reached(event: Event) -> bool:
        nonlocal left
        if targets is None or event in targets:
            left -= 1
            return left <= 0
        return False

    return reached

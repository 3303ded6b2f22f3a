"""Firing events from the loops' generators, and guarding the steps that call user code.

Shared by :mod:`luzwidget.core.loop` (epochs and batches) and :mod:`luzwidget.core.step`
(one batch).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from typing import Any

from luzwidget.core.engine import PASS_THROUGH, Engine, Fault, SkipBatch
from luzwidget.core.events import Event

__all__ = ["Item", "Loop", "fire", "guarded"]

Item = Event | Fault
Loop = Generator[Item, None, None]


def fire(engine: Engine, event: Event) -> Iterable[Item]:
    """Call the callbacks of ``event``, then yield it; on a fault, yield it and obey.

    The one fast-path rule: an event nobody listens to (no callback, and the driver not
    listening, see :class:`~luzwidget.core.flags.LoopFlags`) costs a lookup and nothing else.
    A free-running loop skips the yields too, which saves a resume of every enclosing
    generator per event.
    """
    if engine.table[event] or engine.flags.listening:
        return _fire(engine, event)
    return ()


def _fire(engine: Engine, event: Event) -> Loop:
    fault = engine.dispatch(event)
    while fault is not None:
        engine.apply_handlers(fault)
        yield fault
        if fault.action == "skip":
            if event.in_batch:
                raise SkipBatch
            break
        fault = engine.dispatch(event, fault.done)
    if engine.flags.listening:
        yield event


def guarded(
    engine: Engine, body: Callable[..., Loop], args: tuple[Any, ...], rng: Any, event: Any = None
) -> Loop:
    """Run ``body(*args)``, a step that calls user code; on an exception, yield a fault
    naming the stage it was in (``engine.flags.stage``), then redo the step from its start.

    ``body`` marks the user code it calls with ``flags.in_user_code`` (where a second
    Ctrl-C may interrupt at once) and its stage with ``flags.stage``. Control flow
    (``PASS_THROUGH``) goes through untouched.
    """
    flags = engine.flags
    while True:
        try:
            yield from body(*args)
            return
        except PASS_THROUGH:
            raise
        except BaseException as exc:
            flags.in_user_code = False
            yield from engine.step_fault(flags.stage, exc, rng, event)

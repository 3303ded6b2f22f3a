"""boundary.py: what a drive does at each event boundary (the inbox, step target, Ctrl-C)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from luzwidget.control.boundary import STOP, Boundary, Control
from luzwidget.control.breakpoints import Breakpoints
from luzwidget.core.context import Context
from luzwidget.core.events import Event
from luzwidget.core.flags import LoopFlags
from luzwidget.core.states import Outcome, RunState, stop_condition

STOPPED = Outcome(RunState.DONE, "stopped")


def _boundary() -> tuple[Boundary, list[str]]:
    done: list[str] = []  # what the queued edits did

    def apply(command: Callable[[], None]) -> None:
        command()

    ctx = Context()
    ctx.epoch, ctx.iter = 2, 5
    return Boundary(ctx, LoopFlags(), Breakpoints(), apply, lambda: STOPPED), done


def test_nothing_queued_goes_on_and_stops_listening() -> None:
    b, _ = _boundary()
    b.flags.listening = True
    assert b.at(Event.on_train_batch_end) is None
    assert b.flags.listening is False


def test_edits_apply_in_order_then_a_pause_stops_there() -> None:
    b, done = _boundary()
    b.queue(lambda: done.append("a"))
    assert b.flags.listening is True
    b.queue(Control("pause", "paused"))
    b.queue(lambda: done.append("b"))
    outcome = b.at(Event.on_train_batch_end)
    assert outcome == Outcome(RunState.PAUSED, "paused after on_train_batch_end (epoch 2, batch 5)")
    assert done == ["a"]  # the edit after the pause waits for the next boundary
    assert b.at(Event.on_train_batch_end) is None
    assert done == ["a", "b"]


def test_a_stop_ends_the_drive_through_the_driver() -> None:
    b, _ = _boundary()
    b.queue(Control("stop"))
    assert b.at(Event.on_epoch_end) is STOPPED


def test_a_start_waits_behind_the_step_target() -> None:
    b, _ = _boundary()
    b.target = stop_condition("epoch")
    b.queue(Control("start"))
    assert b.at(Event.on_train_batch_end) is None
    assert len(b.inbox) == 1
    assert b.flags.listening is True
    assert b.at(Event.on_epoch_end) == Outcome(RunState.PAUSED, "stepped to on_epoch_end")


def test_ctrl_c_pauses_at_the_next_boundary(capsys: pytest.CaptureFixture[str]) -> None:
    b, _ = _boundary()
    assert b.request_interrupt() is False
    assert b.request_interrupt() is True  # asked already: a second press
    outcome = b.at(Event.on_train_batch_after_loss)
    assert outcome == Outcome(RunState.PAUSED, outcome.reason if outcome else "", interrupted=True)
    assert capsys.readouterr().err.startswith("[luzwidget] interrupted (Ctrl-C) after on_train")
    assert b.interrupted is False


class _InStep:
    """A stand-in for several processes' boundary policy (``features.instep``)."""

    def __init__(self, leads: bool = True) -> None:
        self.leads = leads
        self.held: list[object] = []
        self.seen: list[tuple[Event, Outcome | None]] = []

    def relay(self, command: object) -> bool:
        self.held.append(command)
        return True  # applied elsewhere (at an agreed boundary)

    def follow(self, event: Event, outcome: Outcome | None) -> Outcome | None:
        self.seen.append((event, outcome))
        return STOP if event == Event.on_epoch_end else outcome

    def detach(self) -> None:
        pass


def test_a_leading_instep_takes_a_command_away_from_the_inbox() -> None:
    b, _ = _boundary()
    b.features.instep = instep = _InStep()
    b.queue(Control("pause", "paused"))
    assert (list(b.inbox), len(instep.held)) == ([], 1)
    b.features.instep = None
    assert b.at(Event.on_train_batch_end) is None  # nothing pauses here


def test_a_following_instep_leaves_commands_in_the_inbox() -> None:
    b, _ = _boundary()
    b.features.instep = instep = _InStep(leads=False)
    b.queue(Control("pause", "paused"))
    assert (len(b.inbox), instep.held) == (1, [])


def test_follow_sees_each_decision_and_may_stop_the_loop() -> None:
    b, _ = _boundary()
    b.features.instep = instep = _InStep(leads=False)
    b.queue(Control("pause", "paused"))
    paused = b.at(Event.on_train_batch_end)
    assert paused is not None
    assert paused.state == RunState.PAUSED
    assert instep.seen == [(Event.on_train_batch_end, paused)]
    assert b.at(Event.on_epoch_end) is STOPPED  # STOP from follow: the driver's stop runs
    b.queue(Control("stop"))
    b.features.instep = None
    assert b.at(Event.on_train_end) is STOPPED

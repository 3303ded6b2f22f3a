"""Edits typed into the dashboard: strict parsing (``control.wire``), refusals with a message,
buttons by state; every message mapped onto the command table."""

from __future__ import annotations

import math
import threading
from typing import Any

import pytest
import torch
from torch import nn

import luzwidget as lw
from luzwidget.control import wire
from luzwidget.core.exceptions import EditError
from luzwidget.widgets.commands import BUTTONS, button_states, edit_values, handle_command


def parse_float(value: object, field: str = "lr") -> float:
    return wire.number(value, field)


def parse_int(value: object, field: str) -> int:
    return wire.whole(value, field)


def parse_bool(value: object, field: str) -> bool:
    return wire.flag(value, field)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.01", 0.01),
        ("1e-3", 1e-3),
        (" 2 ", 2.0),
        ("+.5", 0.5),
        ("3.", 3.0),
        ("1E2", 100.0),
        (0.25, 0.25),
        (3, 3.0),
    ],
)
def test_parse_float_accepts(text: object, expected: float) -> None:
    assert parse_float(text) == expected


@pytest.mark.parametrize(("text", "expected"), [("-1", -1.0), ("0", 0.0)])
def test_parse_float_leaves_the_range_to_the_run(text: str, expected: float) -> None:
    assert parse_float(text) == expected


@pytest.mark.parametrize("text", ["1e999", "-1e400", 10**400, float("inf")])
def test_parse_float_refuses_what_is_not_finite(text: object) -> None:
    with pytest.raises(EditError, match=r"lr: .*(too large|not finite)"):
        parse_float(text)


@pytest.mark.parametrize(
    "text",
    [
        "abc",
        "nan",
        "NaN",
        "inf",
        "-inf",
        "",
        "  ",
        "0x10",
        "1_000",
        "1,5",
        "2*3",
        "__import__('os')",
        "1e-3; 2",
        "١٢",
        True,
        None,
        [1],
        "9" * 41,
    ],
)
def test_parse_float_refuses(text: object) -> None:
    with pytest.raises(EditError, match="lr"):
        parse_float(text)


@pytest.mark.parametrize(
    ("text", "expected"), [("10", 10), (" 3 ", 3), ("0", 0), (4.0, 4), ("-1", -1)]
)
def test_parse_int_accepts(text: object, expected: int) -> None:
    assert parse_int(text, "max_epochs") == expected


@pytest.mark.parametrize("text", ["abc", "1.5", "1e3", "nan", "", True, 2.5])
def test_parse_int_refuses(text: object) -> None:
    with pytest.raises(EditError, match="max_epochs"):
        parse_int(text, "max_epochs")


@pytest.mark.parametrize(("value", "expected"), [(True, True), (False, False), ("true", True)])
def test_parse_bool(value: object, expected: bool) -> None:
    assert parse_bool(value, "verbose") is expected


@pytest.mark.parametrize("value", [1, 0, "yes", None])
def test_parse_bool_refuses(value: object) -> None:
    with pytest.raises(EditError):
        parse_bool(value, "verbose")


@pytest.mark.parametrize(
    ("state", "enabled"),
    [
        ("ready", {"start", "step_batch", "step_epoch", "step_to", "stop"}),
        ("running", {"pause", "stop"}),
        ("paused", {"start", "step_batch", "step_epoch", "step_to", "stop"}),
        ("error", {"stop", "retry", "skip"}),
        ("done", set()),
        ("???", set()),
    ],
)
def test_buttons_by_state(state: str, enabled: set[str]) -> None:
    states = button_states(state)
    assert set(states) == set(BUTTONS)
    assert {name for name, on in states.items() if on} == enabled


def _run(epochs: int = 3) -> lw.Run:
    torch.manual_seed(0)
    x, y = torch.randn(64, 3), torch.randn(64, 1)
    spec = lw.setup(nn.Linear(3, 1), loss=nn.MSELoss(), optimizer=torch.optim.SGD)
    return spec.set_opt_hparams(lr=0.1).run(
        (x, y), epochs=epochs, verbose=False, dataloader_options={"batch_size": 16}
    )


def _lr(run: lw.Run) -> float:
    return run.ctx.optimizers["opt"].param_groups[0]["lr"]


@pytest.mark.parametrize("typed", ["abc", "-1", "nan", "inf", "0", "", "1e400", "0.1+0.2"])
def test_lr_edit_refused_snaps_back_and_changes_nothing(typed: str) -> None:
    run = _run()
    run.step("batch")
    ack = handle_command(run, {"cmd": "edit", "field": "lr", "opt": "opt", "value": typed, "id": 1})
    assert not ack.ok
    assert "lr" in ack.message
    assert edit_values(run)["optimizers"][0]["lr"] == "0.1"  # what the box snaps back to
    assert _lr(run) == 0.1
    run.resume()
    assert run.state == "done"  # the run is unaffected


@pytest.mark.parametrize(("typed", "lr"), [("1e-3", 1e-3), ("0.01", 0.01), (" 0.5 ", 0.5)])
def test_lr_edit_applied(typed: str, lr: float) -> None:
    run = _run()
    ack = handle_command(run, {"cmd": "edit", "field": "lr", "opt": "opt", "value": typed, "id": 2})
    assert ack.ok, ack.message
    assert math.isclose(_lr(run), lr)
    assert edit_values(run)["optimizers"][0]["lr"] == repr(lr)
    assert ack.to_json() == {"id": 2, "ok": True, "message": f"lr of opt set to {lr!r}"}
    assert ack.mark == f"lr {lr!r}"  # where the loss plot marks the edit


def test_lr_edit_unknown_optimizer() -> None:
    ack = handle_command(_run(), {"cmd": "edit", "field": "lr", "opt": "nope", "value": "0.1"})
    assert not ack.ok
    assert "nope" in ack.message


def test_max_epochs_below_current_epoch_is_refused() -> None:
    run = _run(epochs=5)
    run.step("epoch")
    run.step("epoch")
    assert run.ctx.epoch == 2
    ack = handle_command(run, {"cmd": "edit", "field": "max_epochs", "value": "1"})
    assert not ack.ok
    assert "max_epochs" in ack.message
    assert run.ctx.max_epochs == 5
    ack = handle_command(run, {"cmd": "edit", "field": "max_epochs", "value": "3"})
    assert ack.ok, ack.message
    assert run.ctx.max_epochs == 3


def test_min_epochs_verbose_and_breakpoints() -> None:
    run = _run(epochs=5)
    assert handle_command(run, {"cmd": "edit", "field": "min_epochs", "value": "2"}).ok
    assert run.ctx.min_epochs == 2
    refused = handle_command(run, {"cmd": "edit", "field": "min_epochs", "value": "9"})
    assert not refused.ok
    assert edit_values(run)["min_epochs"] == "2"
    assert handle_command(run, {"cmd": "edit", "field": "verbose", "value": True}).ok
    assert run.ctx.verbose is True
    msg = {"cmd": "edit", "field": "breakpoint", "event": "on_epoch_end", "value": True}
    assert handle_command(run, msg).ok
    assert lw.Event.on_epoch_end in run.breakpoints
    assert handle_command(run, {**msg, "value": False}).ok
    assert lw.Event.on_epoch_end not in run.breakpoints
    assert not handle_command(run, {**msg, "event": "on_nothing"}).ok
    assert handle_command(run, {"cmd": "edit", "field": "nonfinite_loss", "value": True}).ok
    assert run.breakpoints.nonfinite_loss is True


def test_unknown_commands_and_fields_are_refused() -> None:
    run = _run()
    assert not handle_command(run, {"cmd": "eval", "value": "1+1"}).ok
    assert not handle_command(run, {"cmd": "edit", "field": "model", "value": "x"}).ok
    assert not handle_command(run, {}).ok


def test_control_commands_drive_the_run_in_the_background() -> None:
    run = _run(epochs=2)
    ack = handle_command(run, {"cmd": "step", "what": "batch"})
    assert ack.ok, ack.message
    run.wait(10)
    assert run.state == "paused"
    assert run.event == lw.Event.on_train_batch_end
    assert handle_command(run, {"cmd": "step", "what": "on_train_batch_after_loss"}).ok
    run.wait(10)
    assert run.event == lw.Event.on_train_batch_after_loss
    assert not handle_command(run, {"cmd": "step", "what": "bogus"}).ok
    assert handle_command(run, {"cmd": "start"}).ok
    run.wait(30)
    assert run.state == "done"
    refused = handle_command(run, {"cmd": "start"})
    assert not refused.ok
    assert "done" in refused.message


class _Gate(lw.Callback):
    """Holds the run at its first batch end until released (it is mid-run)."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.release = threading.Event()

    def on_train_batch_end(self, ctx: lw.Context) -> None:
        if not self.reached.is_set():
            self.reached.set()
            assert self.release.wait(10)


def test_pause_then_start_from_the_dashboard_is_acked_truthfully_and_resumes() -> None:
    gate = _Gate()
    run = _run(epochs=2)
    run.add_callback(gate)
    handle_command(run, {"cmd": "start", "id": 1})
    assert gate.reached.wait(10)
    pause = handle_command(run, {"cmd": "pause", "id": 2})
    start = handle_command(run, {"cmd": "start", "id": 3})
    gate.release.set()
    assert run.wait(10) == "done", run.reason
    assert pause.ok
    assert pause.message == "pausing at the next event"
    assert start.ok
    assert start.message == "queued behind the command in progress; then resumed"


def test_pause_of_a_run_that_is_not_running_says_so() -> None:
    run = _run()
    run.step()
    ack = handle_command(run, {"cmd": "pause", "id": 1})
    assert (ack.ok, ack.message) == (True, "the run is paused: nothing to pause")
    run.resume()
    assert run.state == "done"


def test_lr_edit_of_a_training_run_is_acked_with_what_was_asked() -> None:
    """The ack says the new lr at once; the config part shows it once it landed (the stale
    ack quoted the old lr while training used the new one)."""
    gate = _Gate()
    run = _run(epochs=2)
    run.add_callback(gate)
    handle_command(run, {"cmd": "start", "id": 1})
    assert gate.reached.wait(10)
    ack = handle_command(run, {"cmd": "edit", "field": "lr", "opt": "opt", "value": "0.05"})
    assert (ack.ok, ack.message, ack.to_json().keys()) == (
        True,
        "lr of opt set to 0.05",
        {"id", "ok", "message"},
    )
    assert edit_values(run)["optimizers"][0]["lr"] == "0.1"  # not landed yet
    gate.release.set()
    assert run.wait(10) == "done"
    assert edit_values(run)["optimizers"][0]["lr"] == "0.05"


def test_edit_error_is_a_config_error() -> None:
    assert issubclass(EditError, lw.ConfigError)
    with pytest.raises(lw.ConfigError, match="not a number"):
        parse_float("abc", "lr")


def test_negative_epochs_are_refused_by_the_run() -> None:
    run = _run(epochs=5)
    ack = handle_command(run, {"cmd": "edit", "field": "max_epochs", "value": "-1"})
    assert not ack.ok
    assert "max_epochs=-1" in ack.message  # the Context's own validator said it
    assert run.ctx.max_epochs == 5


_BAD_MESSAGES: list[tuple[dict[str, Any], str]] = [
    ({"cmd": ["start"]}, "cmd: expected a name (text); got list ['start']"),
    ({"cmd": {"a": 1}}, "cmd: expected a name (text); got dict {'a': 1}"),
    ({"cmd": 3}, "cmd: expected a name (text); got int 3"),
    ({}, "cmd: expected a name (text); missing"),
    ({"cmd": "eval", "value": "1+1"}, "unknown command 'eval'"),
    ({"cmd": "edit", "field": "max_epochs", "value": 10**400}, "too large"),
    ({"cmd": "edit", "field": "lr", "value": 10**400}, "too large"),
    ({"cmd": "step"}, "step: 'what' is missing"),
    ({"cmd": "step", "what": ["batch"]}, "what: expected a name (text); got list ['batch']"),
    ({"cmd": "step", "what": {"x": 1}}, "got dict {'x': 1}"),
    ({"cmd": "step", "what": "bogus"}, "what='bogus' is not an event"),
    ({"cmd": "edit"}, "field: expected a name (text); missing"),
    ({"cmd": "edit", "field": ["lr"], "value": "1"}, "got list ['lr']"),
    ({"cmd": "edit", "field": "model", "value": "x"}, "cannot edit 'model'"),
    ({"cmd": "edit", "field": "lr", "opt": ["opt"], "value": "0.1"}, "got list ['opt']"),
    ({"cmd": "edit", "field": "lr", "opt": {"o": 1}, "value": "0.1"}, "got dict {'o': 1}"),
    ({"cmd": "edit", "field": "lr", "opt": "nope", "value": "0.1"}, "'nope'"),
    ({"cmd": "edit", "field": "lr", "value": [0.1]}, "got list [0.1]"),
    ({"cmd": "edit", "field": "lr", "value": None}, "set_lr: lr is missing"),
    ({"cmd": "edit", "field": "verbose", "value": {"v": 1}}, "got dict {'v': 1}"),
    ({"cmd": "edit", "field": "breakpoint", "value": True}, "breakpoint_set: event is missing"),
    (
        {"cmd": "edit", "field": "breakpoint", "event": ["on_epoch_end"], "value": True},
        "event: expected a name (text); got list ['on_epoch_end']",
    ),
    (
        {"cmd": "edit", "field": "breakpoint", "event": {"e": 1}, "value": True},
        "got dict {'e': 1}",
    ),
    ({"cmd": "edit", "field": "breakpoint", "event": "on_x", "value": True}, "event='on_x'"),
    ({"cmd": "edit", "field": "max_epochs", "value": "x" * 500}, "too long"),
    ({"cmd": ["x" * 500]}, "got list ['xxxxxxxx"),
    ({"cmd": "start", "id": [1, 2]}, ""),  # accepted; the ack still echoes the id
]


@pytest.mark.parametrize(("msg", "quoted"), _BAD_MESSAGES)
def test_every_message_gets_an_ack_quoting_what_was_sent(msg: dict[str, Any], quoted: str) -> None:
    run = _run()
    ack = handle_command(run, {"id": 7, **msg})
    assert ack.id == msg.get("id", 7)
    assert ack.ok is (quoted == "")
    assert quoted in ack.message
    assert "event=''" not in ack.message
    assert "x" * 100 not in ack.message  # a huge value is cut when quoted
    ack.to_json()
    run.stop()


def test_a_bug_in_the_run_is_reported_and_answered_as_an_internal_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _run()

    def broken(*_: Any, **__: Any) -> None:
        raise AttributeError("'NoneType' object has no attribute 'param_groups'")

    monkeypatch.setattr(run, "set_lr", broken)
    msg = {"cmd": "edit", "field": "lr", "opt": "opt", "value": "0.5", "id": 3}
    ack = handle_command(run, msg)
    assert not ack.ok
    assert ack.message.startswith("internal error on {'cmd': 'edit'")
    assert "AttributeError" in ack.message
    assert _lr(run) == 0.1
    err = capsys.readouterr().err
    assert err.startswith("[luzwidget] dashboard command {'cmd': 'edit'")
    assert "'value': '0.5'" in err
    assert "Traceback (most recent call last)" in err  # reported with its traceback
    assert "AttributeError: 'NoneType' object" in err

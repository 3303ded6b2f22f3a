"""The one command table: what a dashboard, the time-travel bar and a served run answer,
checked in-process (no socket, no browser)."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import torch
from torch import nn

import luzwidget as lw
from luzwidget.control import wire
from luzwidget.control.commands import TABLE, call
from luzwidget.core.exceptions import EditError
from luzwidget.remote.protocol import METHODS, error_from_reply, jsonable, parse_address
from luzwidget.remote.proxy import Attached
from tests.helpers import observable


@pytest.fixture
def run() -> lw.Run:
    torch.manual_seed(0)
    x = torch.randn(96, 3)
    spec = lw.setup(nn.Linear(3, 1), loss=nn.MSELoss(), optimizer=torch.optim.SGD)
    return spec.set_opt_hparams(lr=0.1).run((x, x.sum(1, keepdim=True)), epochs=2, verbose=False)


def test_calls_go_through_the_run_api(run: lw.Run) -> None:
    call(run, "breakpoint_add", {"event": "train_batch_end"}, remote=True)
    assert call(run, "start", {"until": "batch"}, remote=True).value["state"] in (
        "running",
        "paused",
    )
    run.wait(30)
    assert call(run, "status", {}).value["event"] == "on_train_batch_end"
    assert call(run, "set_lr", {"lr": "0.5"}).message == "lr set to 0.5"
    assert run.ctx.optimizers["opt"].param_groups[0]["lr"] == 0.5
    assert call(run, "edit", {"field": "max_epochs", "value": "3"}).message == (
        "max_epochs set to 3"
    )
    assert run.ctx.max_epochs == 3
    assert call(run, "field", {"name": "epoch"}).value == 1
    assert "Linear" in call(run, "field", {"name": "model"}).value["summary"]
    assert call(run, "breakpoints", {}).value["events"] == ["on_train_batch_end"]
    flag = call(run, "breakpoint_flag", {"name": "nonfinite_loss", "value": True})
    assert flag.value["nonfinite_loss"]
    assert call(run, "layers", {}).value["columns"][0] == "name"
    assert call(run, "snapshot", {"label": "here"}).value == len(run.snapshots) - 1
    assert call(run, "stop", {}).message == "stopped"
    assert run.state == "done"


def test_an_answer_quotes_what_was_asked_not_the_run_before_it_lands(run: lw.Run) -> None:
    """While the run trains an edit lands at the next boundary, after the answer: the
    answer must say the new value, not read the old one back (the stale-ack bug)."""
    run.breakpoints.add("train_batch_end")
    run.step()  # paused inside the fit: commands apply at once, so queue them from a thread
    run.breakpoints.clear()
    run.start()
    try:
        said = call(run, "edit", {"field": "max_epochs", "value": 1_000_000}).message
        lr = call(run, "set_lr", {"lr": 0.05}).message
    finally:
        run.pause()
        run.wait(30)
    assert said == "max_epochs set to 1000000"
    assert lr == "lr set to 0.05"


@pytest.mark.parametrize(
    ("method", "args", "match"),
    [
        ("exec", {}, r"unknown command 'exec'; expected one of \['activations'"),
        ("branch", {}, "unknown command 'branch'"),  # a new run over there: not remotely
        ("status", [], "args must be an object"),
        ("set_lr", {"lr": "fast"}, "lr: 'fast' is not a number"),
        ("set_lr", {"lr": float("nan")}, "is not finite"),
        ("set_lr", {"lr": 10**400}, "too large"),
        ("set_lr", {"lr": "1e400"}, "too large for a number"),
        ("set_lr", {"lr": -1.0}, "finite positive"),
        ("set_lr", {"lr": 0.1, "speed": 2}, "unknown argument 'speed'; it takes lr, opt_name"),
        ("set_lr", {}, "set_lr: lr is missing"),
        ("set_lr", {"lr": 0.1, "opt_name": "adam"}, "adam"),
        ("edit", {"field": "loss_fn", "value": "x"}, "is code"),
        ("edit", {"field": "max_epochs", "value": [1]}, "expected a number, text or true"),
        ("edit", {"field": "max_epochs", "value": 10**400}, "too large"),
        ("edit", {"field": "max_epochs", "value": "2.5"}, "not a whole number"),
        ("edit", {"field": "model", "value": 1}, "cannot be edited"),
        ("edit", {"field": "verbose", "value": "maybe"}, "expected true or false"),
        ("breakpoint_add", {"event": "nowhere"}, "nowhere"),
        ("breakpoint_add", {"event": lambda ctx: True}, "a condition is code"),
        ("breakpoint_remove", {"event": "epoch_end"}, "no breakpoint at on_epoch_end"),
        ("breakpoint_flag", {"name": "nonfinite", "value": "yes"}, "expected true or false"),
        ("breakpoint_flag", {"name": "watch", "value": True}, "expected one of"),
        ("breakpoint_flag", {"name": "_nonfinite", "value": True}, "expected one of"),
        ("field", {"name": "_trait_values"}, "no field"),
        ("start", {"n": 0}, "expected a whole number >= 1"),
        ("start", {"until": "later"}, "later"),
        ("rewind", {"snapshot": 7}, "no snapshot number 7"),
        ("rewind", {"snapshot": -1}, "a snapshot number is >= 0"),
        ("extend", {}, "continues a finished run"),
        ("skip", {}, "skip\\(\\) abandons a failed step"),
        ("retry", {}, "retry\\(\\) is for a run stopped on an error"),
    ],
)
def test_a_bad_call_is_refused_and_changes_nothing(
    run: lw.Run, method: str, args: object, match: str
) -> None:
    run.snapshot("kept")
    before = observable(run)
    with pytest.raises((lw.ConfigError, lw.RunStateError), match=match):
        call(run, method, args, remote=True)
    assert observable(run) == before


def test_the_served_methods_and_the_proxy_come_from_the_table() -> None:
    assert frozenset(n for n, c in TABLE.items() if c.remote) == METHODS
    offered = {n for n in dir(Attached) if not n.startswith("_")}
    by_hand = {"breakpoints", "breakpoint_set", "breakpoint_add", "breakpoint_remove"}
    by_hand |= {"breakpoint_clear", "breakpoint_flag", "field", "summaries"}
    assert METHODS - by_hand <= offered  # ctx and breakpoints: the proxy's sub-objects
    for name in ("pause", "set_lr", "edit", "rewind", "snapshot", "extend"):
        params = [p.name for p in TABLE[name].params]
        assert list(inspect.signature(getattr(Attached, name)).parameters)[1:] == params
        assert TABLE[name].doc in (getattr(Attached, name).__doc__ or "")


@pytest.mark.parametrize(
    ("parse", "value", "expected"),
    [
        (wire.number, "1e-3", 0.001),
        (wire.number, 3, 3.0),
        (wire.whole, "12", 12),
        (wire.whole, 12.0, 12),
        (wire.count, "3", 3),
        (wire.flag, "True", True),
        (wire.target, "epoch", "epoch"),
        (wire.target, "train_batch_end", lw.Event.on_train_batch_end),
        (wire.scalar, None, None),
    ],
)
def test_wire_values_parse(parse: Any, value: Any, expected: Any) -> None:
    assert parse(value, "f") == expected


@pytest.mark.parametrize(
    ("parse", "value", "match"),
    [
        (wire.number, True, "expected a number, got bool"),
        (wire.number, "1e3 + x", "is not a number"),
        (wire.number, "9" * 41, "too long"),
        (wire.number, float("inf"), "not finite"),
        (wire.whole, 2**64, "too large"),
        (wire.count, 0, ">= 1"),
        (wire.name, 3, "expected a name"),
        (wire.name, "x" * 201, "too long"),
        (wire.event, "epoch", "not an event"),
    ],
)
def test_wire_refusals_name_the_field_and_quote_the_value(
    parse: Any, value: Any, match: str
) -> None:
    with pytest.raises(EditError, match=match) as err:
        parse(value, "f")
    assert str(err.value).startswith("f")


def test_the_wire_helpers() -> None:
    assert parse_address("tcp://10.0.0.1:8765") == ("10.0.0.1", 8765)
    assert parse_address(8765) == ("127.0.0.1", 8765)
    for bad in ("host", "h:0", "h:99999", None, True):
        with pytest.raises(lw.ConfigError, match="address"):
            parse_address(bad)
    assert jsonable({"a": float("inf"), "b": (1, torch.tensor(2.5))}) == {"a": None, "b": [1, 2.5]}
    assert isinstance(
        error_from_reply({"error": "RunStateError", "message": "m"}), lw.RunStateError
    )
    assert "KeyError: k" in str(error_from_reply({"error": "KeyError", "message": "k"}))

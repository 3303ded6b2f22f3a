"""luzwidget.remote.methods: what a served run answers, checked in-process (no socket)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import luzwidget as lw
from luzwidget.remote.methods import call
from luzwidget.remote.protocol import error_from_reply, jsonable, parse_address
from tests.helpers import observable


@pytest.fixture
def run() -> lw.Run:
    x = torch.randn(32, 3)
    spec = lw.setup(nn.Linear(3, 1), loss=nn.MSELoss(), optimizer=torch.optim.SGD)
    return spec.set_opt_hparams(lr=0.1).run((x, x.sum(1, keepdim=True)), epochs=2, verbose=False)


def test_calls_go_through_the_run_api(run: lw.Run) -> None:
    call(run, "breakpoint_add", {"event": "train_batch_end"})
    assert call(run, "start", {"until": "batch"})["state"] in ("running", "paused")
    run.wait(30)
    assert call(run, "status", {})["event"] == "on_train_batch_end"
    call(run, "set_lr", {"lr": 0.5})
    assert run.ctx.optimizers["opt"].param_groups[0]["lr"] == 0.5
    call(run, "edit", {"field": "max_epochs", "value": 3})
    assert run.ctx.max_epochs == 3
    assert call(run, "field", {"name": "epoch"}) == 1
    assert "Linear" in call(run, "field", {"name": "model"})["summary"]
    assert call(run, "breakpoints", {})["events"] == ["on_train_batch_end"]
    assert call(run, "breakpoint_flag", {"name": "nonfinite_loss", "value": True})["nonfinite_loss"]
    assert call(run, "layers", {})["columns"][0] == "name"
    call(run, "stop", {})
    assert run.state == "done"


@pytest.mark.parametrize(
    ("method", "args", "match"),
    [
        ("exec", {}, "unknown 'exec'"),
        ("status", [], "args must be an object"),
        ("set_lr", {"lr": "1e-3"}, "lr must be a number"),
        ("set_lr", {"lr": float("nan")}, "finite positive"),
        ("set_lr", {"lr": 0.1, "speed": 2}, "unexpected keyword"),
        ("edit", {"field": "loss_fn", "value": "x"}, "is code"),
        ("edit", {"field": "max_epochs", "value": [1]}, "number, text or bool"),
        ("edit", {"field": "model", "value": 1}, "cannot be edited"),
        ("breakpoint_add", {"event": "nowhere"}, "nowhere"),
        ("breakpoint_flag", {"name": "nonfinite", "value": "yes"}, "True or False"),
        ("breakpoint_flag", {"name": "watch", "value": True}, "nonfinite_loss or nonfinite"),
        ("edit", {"field": "max_epochs", "value": 10**400}, "max_epochs"),
        ("set_lr", {"lr": 10**400}, "finite positive"),
        ("field", {"name": "_trait_values"}, "no field"),
        ("start", {"n": 0}, "positive int"),
    ],
)
def test_a_bad_call_is_refused_and_changes_nothing(
    run: lw.Run, method: str, args: object, match: str
) -> None:
    before = observable(run)  # everything a call could touch, breakpoints.watch included
    with pytest.raises(lw.ConfigError, match=match):
        call(run, method, args)
    assert observable(run) == before


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

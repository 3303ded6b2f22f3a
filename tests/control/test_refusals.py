"""Numbers reach the Run API only when they are finite and in range (issue 23), through every
door: a local call, the dashboard's command, a served run's call. A refused call leaves
everything it could touch as it was (:func:`tests.helpers.observable`), and the run (and a
dashboard's next tick) goes on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

import luzwidget as lw
from luzwidget.control.commands import call
from luzwidget.core.context import MAX_EPOCHS
from luzwidget.core.values import quote
from luzwidget.widgets.collector import Collector
from luzwidget.widgets.commands import handle_command
from luzwidget.widgets.feed import DashboardFeed
from tests.helpers import observable

HUGE = 10**400  # float(HUGE) raises OverflowError


def make_run() -> lw.Run:
    torch.manual_seed(0)
    x = torch.randn(32, 3)
    spec = lw.setup(nn.Linear(3, 1), loss=nn.MSELoss(), optimizer=torch.optim.SGD)
    run = spec.set_opt_hparams(lr=0.1).run(
        (x, x.sum(1, keepdim=True)), epochs=3, verbose=False, dataloader_options={"batch_size": 8}
    )
    run.step("batch")  # paused inside the first epoch
    return run


def dash_edit(field: str, value: Any) -> Callable[[lw.Run], Any]:
    def send(run: lw.Run) -> Any:
        ack = handle_command(run, {"cmd": "edit", "field": field, "value": value, "id": "t"})
        if not ack.ok:
            raise lw.ConfigError(ack.message)
        return ack

    return send


REFUSED: dict[str, tuple[Callable[[lw.Run], Any], str]] = {
    "edit max_epochs 10**400": (lambda r: r.edit("max_epochs", HUGE), "max_epochs"),
    "edit max_epochs 2**63": (lambda r: r.edit("max_epochs", MAX_EPOCHS + 1), "max_epochs"),
    "edit min_epochs 10**400": (lambda r: r.edit("min_epochs", HUGE), "min_epochs"),
    "edit max_epochs -10**400": (lambda r: r.edit("max_epochs", -HUGE), "max_epochs"),
    "set_lr 10**400": (lambda r: r.set_lr(HUGE), "lr must be a finite positive number"),
    "set_lr -10**400": (lambda r: r.set_lr(-HUGE), "lr must be a finite positive number"),
    "set_lr inf": (lambda r: r.set_lr(float("inf")), "lr must be a finite positive number"),
    "dashboard max_epochs": (dash_edit("max_epochs", "1" + "0" * 400), "max_epochs"),
    "dashboard lr 1e400": (dash_edit("lr", "1e400"), "too large"),
    "remote edit": (
        lambda r: call(r, "edit", {"field": "max_epochs", "value": HUGE}, remote=True),
        "too large",
    ),
    "remote set_lr": (lambda r: call(r, "set_lr", {"lr": HUGE}, remote=True), "lr"),
    "remote breakpoint_flag watch": (
        lambda r: call(r, "breakpoint_flag", {"name": "watch", "value": True}, remote=True),
        "expected one of",
    ),
    "remote breakpoint_flag private": (
        lambda r: call(r, "breakpoint_flag", {"name": "_nonfinite", "value": True}, remote=True),
        "expected one of",
    ),
    "remote breakpoint_flag value": (
        lambda r: call(r, "breakpoint_flag", {"name": "nonfinite", "value": 1}, remote=True),
        "expected true or false",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_refused_call_changes_nothing_and_the_run_goes_on(case: str) -> None:
    attempt, said = REFUSED[case]
    run = make_run()
    before = observable(run)
    with pytest.raises(lw.ConfigError, match=said) as refused:
        attempt(run)
    assert len(str(refused.value)) < 400  # a 400-digit number is not quoted whole
    assert observable(run) == before
    run.step("batch")  # the queued edits (none) applied at this boundary
    assert (run.state, run.ctx.iter, run.ctx.max_epochs) == ("paused", 2, 3)
    progress = Collector(run, DashboardFeed(lambda: None, lambda: None)).collect(full=True)
    assert progress is not None  # the dashboard's tick (OverflowError before)
    run.breakpoints.nonfinite = True  # the breakpoints still work (watch untouched)
    assert run.breakpoints.nonfinite


def test_the_largest_epochs_are_taken_and_one_more_is_refused_everywhere() -> None:
    run = make_run()
    run.edit("max_epochs", MAX_EPOCHS)
    run.step("batch")
    assert run.ctx.max_epochs == MAX_EPOCHS
    assert Collector(run, DashboardFeed(lambda: None, lambda: None)).collect(full=True)
    x = torch.randn(8, 3)
    spec = lw.setup(nn.Linear(3, 1), loss=nn.MSELoss(), optimizer=torch.optim.SGD)
    with pytest.raises(lw.ConfigError, match=r"epochs must be an int from 0 to"):
        spec.fit((x, x.sum(1, keepdim=True)), epochs=HUGE, verbose=False)
    with pytest.raises(lw.ConfigError, match=r"max_epochs must be an int from 0 to"):
        spec.fit((x, x.sum(1, keepdim=True)), epochs=(1, HUGE), verbose=False)
    with pytest.raises(lw.ConfigError, match=r"branch: max_epochs must be an int from 0 to"):
        run.branch(run.snapshots[0], max_epochs=HUGE)
    done = make_run()
    done.resume()
    before = observable(done)
    with pytest.raises(lw.ConfigError, match=r"would take max_epochs past"):
        done.extend(HUGE)
    with pytest.raises(lw.ConfigError, match=r"would take max_epochs past"):
        done.extend(MAX_EPOCHS)
    assert observable(done) == before


def test_numbers_in_messages_are_shown_short() -> None:
    assert quote(HUGE) == "an int of about 401 digits"
    assert quote(-(10**5000)) == "a negative int of about 5001 digits"  # repr() would raise
    assert quote(12) == "12"
    assert quote("x" * 100) == repr("x" * 100)[:57] + "..."

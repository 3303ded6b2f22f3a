"""The sentinel (run.breakpoints.sentinel): each check pauses at a planted bug within one
iteration, naming its culprit, and stays silent on clean runs (luzwidget.insight.sentinel)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn import functional as nnf

import luzwidget as lw
from luzwidget.core.exceptions import ConfigError
from luzwidget.insight.sentinel import CHECKS
from tests.training_helpers import Net, make_data

OPTIONS = {"verbose": False, "dataloader_options": {"batch_size": 8}}


class Unused(Net):
    """Net with a layer the loss never reaches."""

    def __init__(self) -> None:
        super().__init__()
        self.spare = nn.Linear(4, 4)


class Spiky(nn.Module):
    """A regression whose 30th training forward is off by 1000: its gradient explodes (a
    buffer counts the forwards)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
        self.register_buffer("seen", torch.zeros((), dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        if self.training:
            self.seen += 1
            if int(self.seen) == 30:
                out = out + 1e3
        return out


class OnFitBegin(lw.Callback):
    """Runs ``fn(ctx)`` at ``on_fit_begin`` (before the sentinel looks)."""

    def __init__(self, fn: Callable[[lw.Context], Any]) -> None:
        self.fn = fn

    def on_fit_begin(self, ctx: lw.Context) -> None:
        self.fn(ctx)


class At(lw.Callback):
    """Runs ``fn(ctx)`` at every ``event``."""

    def __init__(self, event: str, fn: Callable[[lw.Context], Any]) -> None:
        self.fn = fn
        setattr(self, event, lambda ctx: self.fn(ctx))


def ce(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return nnf.cross_entropy(pred, target)


def _foreign_group(ctx: lw.Context) -> None:
    ctx.optimizers["opt"].add_param_group({"params": [nn.Parameter(torch.zeros(3))]})


def _no_step(ctx: lw.Context) -> None:
    ctx.step_opt = lambda opt: None


def _subset(_: Any) -> Any:
    model = Net()
    return lw.setup(
        model, loss=nn.CrossEntropyLoss(), optimizer=torch.optim.Adam(model.body[0].parameters())
    )


def make(
    check: str,
    module: Any = Net,
    loss: Any = ce,
    callbacks: tuple[Any, ...] = (),
    labels: Callable[[torch.Tensor], torch.Tensor] = lambda y: y,
    spec: Any = None,
) -> lw.Run:
    torch.manual_seed(0)
    x, y = make_data(64)
    if spec is None:
        spec = lw.setup(module, loss=loss, optimizer=torch.optim.Adam).set_opt_hparams(lr=1e-2)
    xv, yv = make_data(16, seed=1)
    valid = (xv, labels(yv))
    run = spec.run((x, labels(y)), 2, valid_data=valid, callbacks=list(callbacks), **OPTIONS)
    if not CHECKS[check]:
        run.breakpoints.sentinel.enable(check)
    return run


# check -> (how it is planted, where it pauses (epoch, batch), the culprit)
PLANTED: dict[str, tuple[dict[str, Any], tuple[int, int], tuple[str, str]]] = {
    "not_in_optimizer": ({"spec": _subset(None)}, (0, 0), ("parameter", "body.3.weight")),
    "not_in_model": ({"callbacks": (OnFitBegin(_foreign_group),)}, (0, 0), ("optimizer", "opt")),
    "no_grad": ({"module": Unused}, (1, 1), ("parameter", "spare.weight")),
    "no_update": ({"callbacks": (OnFitBegin(_no_step),)}, (1, 1), ("optimizer", "opt")),
    "zero_grads": ({"loss": lambda p, t: ce(p, t) * 0}, (1, 1), ("optimizer", "opt")),
    "wrong_mode": (
        {"callbacks": (At("on_train_batch_begin", lambda ctx: ctx.model.eval()),)},
        (1, 1),
        ("module", "(model)"),
    ),
    "detached_loss": ({"loss": lambda p, t: ce(p, t).detach()}, (1, 1), ("module", "(model)")),
    "label_range": ({"labels": lambda y: y + 1}, (1, 1), ("module", "(model)")),
    "grad_explosion": (
        {"module": Spiky, "loss": nnf.mse_loss, "labels": lambda y: y[:, None].float()},
        (4, 6),
        ("parameter", "body.2.weight"),
    ),
}


@pytest.mark.parametrize("check", list(PLANTED))
def test_each_check_pauses_at_its_planted_bug_and_names_the_culprit(check: str) -> None:
    planted, (epoch, batch), culprit = PLANTED[check]
    run = make(check, **planted)
    if check == "grad_explosion":
        run.edit("max_epochs", 4)
    run.resume()
    assert run.state == "paused", run.error
    assert run.reason.startswith(f"sentinel {check}: "), run.reason
    assert (run.ctx.epoch, run.ctx.iter) == (epoch, batch)
    sentinel = run.breakpoints.sentinel
    assert sentinel is not None
    assert sentinel.origin == culprit
    assert [f.check for f in sentinel.findings] == [check]
    assert culprit[1] in run.reason or culprit[1] == "(model)"
    assert "(epoch" in run.reason


def test_wrong_mode_while_validating() -> None:
    run = make("wrong_mode", callbacks=(At("on_valid_batch_begin", lambda ctx: ctx.model.train()),))
    run.resume()
    assert run.reason.startswith("sentinel wrong_mode: the model is in train mode while validating")
    assert (run.ctx.epoch, run.ctx.iter, run.ctx.training) == (1, 1, False)


def test_a_check_fires_once_per_fit_and_the_run_goes_on() -> None:
    run = make("no_grad", module=Unused)
    run.resume()
    assert run.reason.startswith("sentinel no_grad")
    run.resume()
    assert run.state == "done"
    assert len(run.breakpoints.sentinel.findings) == 1


def test_a_blocking_fit_says_it_once_and_goes_on(capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    spec = lw.setup(Unused, loss=nn.CrossEntropyLoss(), optimizer=torch.optim.Adam)
    fitted = spec.fit(make_data(64), 3, **OPTIONS)
    said = [line for line in capsys.readouterr().err.splitlines() if "sentinel" in line]
    assert len(said) == 1
    assert "sentinel no_grad: parameter spare.weight has no gradient" in said[0]
    assert said[0].endswith("fit() goes on (use run() to stop at breakpoints).")
    assert fitted.run.state == "done"


def test_a_replay_does_not_stop_at_what_the_sentinel_found_before() -> None:
    run = make("no_grad", module=Unused)
    run.resume()  # paused at the first batch
    run.resume()  # on to the end
    run.step_back(n=15)  # replays the first batches: no pause on the way
    assert run.reason.startswith("stepped back 15 batches")
    found = run.find(lambda ctx: ctx.epoch == 1 and ctx.iter == 1)
    assert found is not None
    assert found.batch == 1


def test_switching_checks() -> None:
    run = make("no_grad", module=Unused)
    sentinel = run.breakpoints.sentinel
    assert sentinel.checks == CHECKS
    sentinel.disable("no_grad")
    run.resume()
    assert run.state == "done"
    sentinel.disable("all")
    assert not any(sentinel.checks.values())
    assert all(type(cb).__name__ not in ("Sentinel", "FirstSteps") for cb in run.ctx.callbacks)
    with pytest.raises(ConfigError, match="unknown check 'nope'; the checks are not_in_optimizer"):
        sentinel.enable("nope")


# -- no false alarm --------------------------------------------------------------------------

WORKLOADS = ["accumulation", "bert", "frozen_batchnorm", "gan", "lstm", "two_io", "vae"]


@pytest.mark.parametrize("name", WORKLOADS)
def test_silent_on_the_workloads_with_every_check_on(name: str) -> None:
    module = importlib.import_module(f"tests.workloads.test_{name}")
    run = module.workload().run()
    run.breakpoints.sentinel.enable("all")
    run.resume()
    assert run.state == "done", (run.reason, run.error)
    assert run.breakpoints.sentinel.findings == []


def test_silent_on_a_clean_run_with_every_check_on() -> None:
    run = make("grad_explosion")
    run.breakpoints.sentinel.enable("all")
    run.edit("max_epochs", 6)
    run.resume()
    assert run.state == "done"
    assert run.breakpoints.sentinel.findings == []

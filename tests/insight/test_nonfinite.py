"""breakpoints.nonfinite: the origin of a NaN named exactly; hooks only while on."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import luzwidget as lw
from luzwidget.control.breakpoints import Breakpoints
from luzwidget.core.engine import engine_of
from luzwidget.core.exceptions import ConfigError
from luzwidget.insight.nonfinite import NonfiniteWatch
from tests.helpers import E, make_data

OPTS = {"batch_size": 16}


class Blow(nn.Module):
    """Identity, except that its ``at``-th forward multiplies by inf."""

    def __init__(self, at: int = 3) -> None:
        super().__init__()
        self.at, self.calls = at, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x * float("inf") if self.calls == self.at else x


class NanGrad(torch.autograd.Function):
    """Identity forward; a NaN gradient backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad * float("nan")


class BadBackward(nn.Module):
    def __init__(self, at: int = 2) -> None:
        super().__init__()
        self.at, self.calls = at, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return NanGrad.apply(x) if self.calls == self.at else x


class Net(nn.Module):
    def __init__(self, middle: str = "blow", at: int = 3) -> None:
        super().__init__()
        inner = Blow(at) if middle == "blow" else BadBackward(at)
        self.net = nn.Sequential(nn.Linear(4, 8), inner, nn.ReLU(), nn.Linear(8, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _run(loss: Any = None, epochs: int = 2, **hparams: Any) -> lw.Run:
    torch.manual_seed(0)
    x, y = make_data(64)
    spec = lw.setup(Net, loss=loss or nn.MSELoss(), optimizer=torch.optim.SGD)
    spec = spec.set_hparams(**hparams).set_opt_hparams(lr=0.01)
    return spec.run((x, y), epochs=epochs, verbose=False, dataloader_options=OPTS)


def _hooks(run: lw.Run) -> int:
    return sum(len(m._forward_hooks) for m in run.ctx.model.modules())


def _watch_in_run(run: lw.Run) -> bool:
    in_callbacks = any(isinstance(cb, NonfiniteWatch) for cb in run.ctx.callbacks)
    in_table = any(
        isinstance(getattr(fn, "__self__", None), NonfiniteWatch)
        for fns in engine_of(run.ctx).table.values()
        for fn in fns
    )
    return in_callbacks or in_table


def test_names_the_module_that_emitted_inf() -> None:
    run = _run(at=3)
    run.breakpoints.nonfinite = True
    run.resume()
    assert run.state == "paused"
    assert run.reason == (
        "non-finite output of net.1 (Blow) at on_train_batch_after_pred (epoch 1, batch 3)"
    )
    assert run.event is E.on_train_batch_after_pred
    assert run.breakpoints.watch.origin == ("output", "net.1")


def test_names_the_first_parameter_whose_gradient_is_not_finite() -> None:
    run = _run(middle="grad", at=2)
    run.breakpoints.nonfinite = True
    run.resume()
    assert run.reason == (
        "non-finite gradient of net.0.weight at on_train_batch_before_step (epoch 1, batch 2)"
    )
    assert run.breakpoints.watch.origin == ("gradient", "net.0.weight")
    assert torch.isfinite(run.ctx.model.net[3].weight.grad).all()  # after the bad module


def test_names_the_loss_when_the_outputs_were_finite() -> None:
    calls = [0]

    def loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        calls[0] += 1
        value = nn.functional.mse_loss(pred, target)
        return value * float("nan") if calls[0] == 2 else value

    run = _run(loss=loss, at=0)
    run.breakpoints.nonfinite = True
    run.resume()
    assert run.reason == "non-finite loss (nan) at on_train_batch_after_loss (epoch 1, batch 2)"


def test_validation_outputs_are_checked_too() -> None:
    torch.manual_seed(0)
    x, y = make_data(64)
    spec = lw.setup(Net, loss=nn.MSELoss(), optimizer=torch.optim.SGD).set_hparams(at=5)
    run = spec.set_opt_hparams(lr=0.01).run(
        (x, y), epochs=1, valid_data=(x[:32], y[:32]), verbose=False, dataloader_options=OPTS
    )
    run.breakpoints.nonfinite = True
    run.resume()  # 4 training forwards, then the first validation one
    assert run.reason == (
        "non-finite output of net.1 (Blow) at on_valid_batch_after_pred (epoch 1, batch 1)"
    )


def test_hooks_only_while_on_and_removed_when_turned_off() -> None:
    run = _run(at=0)
    assert _hooks(run) == 0
    assert not _watch_in_run(run)
    assert not run.breakpoints
    run.breakpoints.nonfinite = True
    assert _hooks(run) == 6  # (model), net, and the 4 layers
    assert run.breakpoints
    assert "nonfinite" in repr(run.breakpoints)
    run.step("batch")
    flags = run.breakpoints.watch._flags
    run.step(E.on_train_batch_after_pred)
    assert flags == []  # checked and cleared at the event
    run.breakpoints.nonfinite = False
    assert _hooks(run) == 0
    assert not _watch_in_run(run)
    assert not run.breakpoints
    run.breakpoints.nonfinite = True
    run.breakpoints.clear()
    assert _hooks(run) == 0
    assert not _watch_in_run(run)


def test_hooks_keep_tensors_not_bools_no_sync_per_module() -> None:
    run = _run(at=0)
    run.breakpoints.nonfinite = True
    run.step(E.on_train_batch_begin)
    run.ctx.model(run.ctx.input)  # a forward outside the loop, to look at what hooks keep
    flags = run.breakpoints.watch._flags
    assert [name for name, _, _ in flags] == ["net.0", "net.1", "net.2", "net.3", "net", "(model)"]
    assert all(isinstance(flag, torch.Tensor) and flag.ndim == 0 for _, _, flag in flags)


def test_hooks_removed_when_the_run_ends_and_back_when_it_is_extended() -> None:
    run = _run(at=0, epochs=1)
    run.breakpoints.nonfinite = True
    run.resume()
    assert run.state == "done"
    assert _hooks(run) == 0
    run.extend(1)
    run.step(E.on_epoch_begin)
    assert _hooks(run) == 6
    run.breakpoints.nonfinite = False
    assert _hooks(run) == 0


def test_turned_on_while_done_installs_nothing() -> None:
    run = _run(at=0, epochs=1)
    run.resume()
    run.breakpoints.nonfinite = True
    assert _hooks(run) == 0


def test_free_run_with_it_off_reaches_the_end() -> None:
    run = _run(at=3)  # the inf goes unnoticed without the breakpoint
    run.resume()
    assert run.state == "done"
    assert _hooks(run) == 0
    assert not _watch_in_run(run)


def test_refuses_a_non_bool() -> None:
    run = _run()
    with pytest.raises(ConfigError, match="nonfinite must be True or False, got 1"):
        run.breakpoints.nonfinite = 1  # type: ignore[assignment]
    with pytest.raises(ConfigError, match="needs a run"):
        Breakpoints().nonfinite = True


def test_from_another_thread_while_training_in_the_background() -> None:
    run = _run(at=10**9, epochs=50)
    run.start()
    run.breakpoints.nonfinite = True  # queued: applied by the run's thread at a boundary
    run.breakpoints.nonfinite = False
    run.breakpoints.nonfinite = True
    run.pause()
    run.wait()
    assert run.state == "paused"
    assert _hooks(run) == 6
    assert sum(isinstance(cb, NonfiniteWatch) for cb in run.ctx.callbacks) == 1
    run.breakpoints.nonfinite = False
    assert _hooks(run) == 0
    assert not _watch_in_run(run)
    run.stop()


class OwnStep(Net):
    """Net with its own step(): no after_pred event, so the check is at on_train_batch_end."""

    def step(self, ctx: lw.Context) -> None:
        ctx.pred = self(ctx.input)
        loss = nn.functional.mse_loss(ctx.pred, ctx.target)
        if ctx.training:
            opt = ctx.optimizers["opt"]
            opt.zero_grad()
            loss.backward()
            opt.step()
        ctx.loss = loss.detach()


def test_a_modules_own_step_is_checked_at_the_batch_end() -> None:
    torch.manual_seed(0)
    x, y = make_data(64)
    spec = lw.setup(OwnStep, optimizer=torch.optim.SGD).set_hparams(at=2)
    run = spec.set_opt_hparams(lr=0.01).run(
        (x, y), epochs=1, verbose=False, dataloader_options=OPTS
    )
    run.breakpoints.nonfinite = True
    run.resume()
    assert (
        run.reason == "non-finite output of net.1 (Blow) at on_train_batch_end (epoch 1, batch 2)"
    )

"""A module's own step keeps the built-ins through ctx.backward, ctx.step_opt and
ctx.autocast; going around a piece a built-in needs is refused before the step."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import luzwidget as lw
from luzwidget.callbacks import GradientClip, MixedPrecision
from tests.helpers import MLP, make_data


class Pieces(MLP):
    def step(self, ctx: lw.Context) -> None:
        with ctx.autocast():
            ctx.pred = self(ctx.input)
            loss = nn.functional.mse_loss(ctx.pred.float(), ctx.target)
        if ctx.training:
            opt = ctx.optimizers["opt"]
            opt.zero_grad()
            ctx.backward(loss)
            ctx.step_opt(opt)
        ctx.loss = loss.detach()


class NoAutocast(Pieces):
    def step(self, ctx: lw.Context) -> None:
        ctx.pred = self(ctx.input)
        loss = nn.functional.mse_loss(ctx.pred, ctx.target)
        opt = ctx.optimizers["opt"]
        opt.zero_grad()
        ctx.backward(loss)
        ctx.step_opt(opt)
        ctx.loss = loss.detach()


class OwnBackward(Pieces):
    def step(self, ctx: lw.Context) -> None:
        ctx.pred = self(ctx.input)
        loss = nn.functional.mse_loss(ctx.pred, ctx.target)
        opt = ctx.optimizers["opt"]
        opt.zero_grad()
        loss.backward()
        ctx.step_opt(opt)
        ctx.loss = loss.detach()


def fit(module: type[nn.Module], *callbacks: lw.Callback) -> lw.Run:
    torch.manual_seed(0)
    spec = lw.setup(module, optimizer=torch.optim.SGD).set_opt_hparams(lr=0.05)
    run = spec.run(make_data(32), epochs=1, verbose=False, callbacks=list(callbacks))
    run.resume()
    return run


class Seen(lw.Callback):
    def __init__(self) -> None:
        self.events: list[str] = []
        self.autocast: list[bool] = []

    def on_train_batch_before_backward(self, ctx: lw.Context) -> None:
        self.events.append("before_backward")

    def on_train_batch_before_step(self, ctx: lw.Context) -> None:
        self.events.append(f"before_step {ctx.opt_nm}")

    def on_train_batch_after_step(self, ctx: lw.Context) -> None:
        self.events.append("after_step")


def test_the_pieces_fire_the_inner_events_in_order() -> None:
    seen = Seen()
    assert fit(Pieces, seen).state == "done"
    assert seen.events == ["before_backward", "before_step opt", "after_step"]  # one batch


def test_mixed_precision_reaches_the_step_through_ctx_autocast() -> None:
    dtypes: list[torch.dtype] = []

    class Spy(Pieces):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = super().forward(x)
            dtypes.append(out.dtype)
            return out

    assert fit(Spy, MixedPrecision()).state == "done"
    assert dtypes == [torch.bfloat16]  # training; validation has no data here
    assert fit(Pieces).state == "done"  # without it, ctx.autocast() enters nothing


@pytest.mark.parametrize(
    ("module", "callback", "says"),
    [
        (NoAutocast, MixedPrecision(), r"ran the model outside `with ctx\.autocast\(\):`"),
        (
            OwnBackward,
            GradientClip(1.0),
            r"did not go through ctx\.backward\(loss\), so GradientClip",
        ),
    ],
)
def test_going_around_a_piece_is_refused_before_the_step(
    module: type[nn.Module], callback: lw.Callback, says: str
) -> None:
    run = fit(module, callback)
    assert run.state == "error"
    assert (run.ctx.epoch, run.ctx.iter) == (1, 1)
    with pytest.raises(Exception, match=says):
        raise run.error.__cause__
    torch.manual_seed(0)
    initial = module().state_dict()
    now = run.ctx.model.state_dict()
    assert all(torch.equal(initial[k], now[k]) for k in initial)  # the optimizer never moved

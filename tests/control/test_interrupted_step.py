"""A KeyboardInterrupt inside a step (a second Ctrl-C lands in user code) is redone, never
dropped: the run pauses saying the step is redone, and resume() ends bit-identical to a run
never interrupted, every batch trained once (issue 23: a planted "skip" went unnoticed)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import luzwidget as lw
from tests.helpers import MLP, make_data, snapshot, state_equal

X, Y = make_data(64)  # 4 shuffled batches of 16 per epoch


class Seen(lw.Callback):
    """Every training batch that ended: (epoch, batch, the batch's first input value)."""

    def __init__(self) -> None:
        self.batches: list[tuple[int, int, float]] = []

    def on_train_batch_end(self, ctx: lw.Context) -> None:
        self.batches.append((ctx.epoch, ctx.iter, float(ctx.input[0, 0])))


def build(where: str, at: tuple[int, int] | None) -> tuple[lw.Run, Seen]:
    """A run with dropout and a shuffled loader; ``where`` in its step raises
    KeyboardInterrupt once at ``at`` (epoch, batch), as a second Ctrl-C there does."""
    state: dict[str, Any] = {"ctx": None, "fired": False}

    def maybe(now: str) -> None:
        ctx = state["ctx"]
        if now == where and not state["fired"] and (ctx.epoch, ctx.iter) == at:
            state["fired"] = True
            raise KeyboardInterrupt

    class Model(MLP):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = super().forward(x)  # dropout has drawn its random numbers
            if self.training:
                maybe("forward")
            return out

    def loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        value = nn.functional.mse_loss(pred, target)
        maybe("loss")
        return value

    def backward(value: torch.Tensor) -> None:
        value.backward()
        maybe("backward")  # gradients are there: they must be discarded

    class Keep(lw.Callback):
        def on_fit_begin(self, ctx: lw.Context) -> None:
            state["ctx"] = ctx

    torch.manual_seed(0)
    spec = (
        lw.setup(Model, loss=loss, optimizer=torch.optim.Adam, backward=backward)
        .set_hparams(dropout=0.5)
        .set_opt_hparams(lr=0.01)
    )
    seen = Seen()
    run = spec.run(
        torch.utils.data.TensorDataset(X, Y),
        epochs=2,
        callbacks=[Keep(), seen],
        verbose=False,
        dataloader_options={"batch_size": 16, "shuffle": True},
    )
    return run, seen


@pytest.mark.parametrize("where", ["forward", "loss", "backward"])
def test_a_keyboard_interrupt_inside_a_step_is_redone_on_resume(where: str) -> None:
    clean, clean_seen = build(where, None)
    clean.resume()
    assert clean.state == "done"

    run, seen = build(where, (2, 3))
    run.resume()
    assert run.state == "paused"
    assert run.interrupted
    assert "redoes this step from its start" in run.reason
    assert (run.ctx.epoch, run.ctx.iter) == (2, 3)
    run.resume()
    assert run.state == "done"
    assert seen.batches == clean_seen.batches  # batch 3 of epoch 2 trained once, none dropped
    assert [(e, b) for e, b, _ in seen.batches] == [(e, b) for e in (1, 2) for b in (1, 2, 3, 4)]
    assert state_equal(snapshot(run.ctx.model), snapshot(clean.ctx.model))
    assert run.ctx.records["metrics"] == clean.ctx.records["metrics"]

"""A regression whose target is ``(N,)`` while the model returns ``(N, 1)``: refused with
the fix, whatever the loss (an ``nn`` loss, a function, the user's own expression), in
training, in validation and in ``evaluate()``; checked on each loader's first batch only.

Glue left to the user: none (the error names the fix).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn import functional as nnf

import luzwidget as lw

LOSSES: list[Callable[..., Any]] = [
    nn.MSELoss(),
    nnf.mse_loss,
    nnf.l1_loss,
    lambda p, t: ((p - t) ** 2).mean(),
]


def data(n: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    return x, x.sum(1)  # (N,): the trap


def spec(loss: Callable[..., Any]) -> lw.Setup:
    return (
        lw.setup(nn.Linear, loss=loss, optimizer=torch.optim.SGD)
        .set_hparams(in_features=3, out_features=1)
        .set_opt_hparams(lr=0.01)
    )


@pytest.mark.parametrize("loss", LOSSES)
def test_training_refuses_the_broadcast(loss: Callable[..., Any]) -> None:
    with pytest.raises(
        lw.StepError, match=r"shape \(16, 1\) and the target \(16,\).*\(16, 16\)"
    ) as err:
        spec(loss).fit(data(), epochs=1, verbose=False, dataloader_options={"batch_size": 16})
    assert "squeeze the prediction" in str(err.value.__cause__)


@pytest.mark.parametrize("loss", LOSSES)
def test_validation_and_evaluate_refuse_it_too(loss: Callable[..., Any]) -> None:
    x, y = data()
    good = (x, y.unsqueeze(1))
    run = spec(loss).run(good, epochs=1, valid_data=data(8, 1), verbose=False)
    run.resume()
    assert run.state == "error"
    assert "the target (8,)" in str(run.error.__cause__)
    assert run.error.event == lw.Event.on_valid_batch_after_loss
    fitted = spec(loss).fit(good, epochs=1, verbose=False)
    with pytest.raises(lw.StepError, match=r"the target \(8,\)"):
        fitted.evaluate(data(8, 1))
    assert fitted.evaluate((x, y.unsqueeze(1)))["loss"] > 0  # the right shape passes


def test_checked_on_each_passs_first_batch_not_on_every_batch() -> None:
    calls: list[int] = []

    def loss(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        calls.append(len(torch.overrides._get_current_function_mode_stack()))
        return nnf.mse_loss(p, t)

    x, y = data(64)
    spec(loss).fit((x, y.unsqueeze(1)), epochs=2, valid_data=(x, y.unsqueeze(1)), verbose=False)
    # train: 2 batches an epoch, valid: 2; only the first batch of each pass is watched
    assert calls == [1, 0, 1, 0, 1, 0, 1, 0]

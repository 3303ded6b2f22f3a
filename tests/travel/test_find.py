"""run.find(condition): paused at the start of the first training batch where it held,
replayed exactly (luzwidget.travel.find, conditions)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import luzwidget as lw
from luzwidget.core.exceptions import ConfigError
from luzwidget.travel.conditions import spike_ratios
from tests.training_helpers import make_data

BATCHES = 100  # per epoch: 800 samples, batches of 8
OPTIONS = {"verbose": False, "dataloader_options": {"batch_size": 8}}


class _NaNGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx: object, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return x.clone()

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return grad * math.nan


class Planted(nn.Module):
    """An MLP with bugs planted at its n-th training forward (counted in a buffer, which
    snapshots restore: a replay meets them at the same batch): a NaN output (``nan_at``),
    a loss spike (``spike_at``), a NaN gradient under a finite loss (``grad_at``)."""

    def __init__(self, nan_at: int = 0, spike_at: int = 0, grad_at: int = 0) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        self.register_buffer("seen", torch.zeros((), dtype=torch.long))
        self.nan_at, self.spike_at, self.grad_at = nan_at, spike_at, grad_at

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        if not self.training:
            return out
        self.seen += 1
        n = int(self.seen)
        if n == self.nan_at:
            out = out * math.nan
        if n == self.spike_at:
            out = out + torch.tensor([60.0, -60.0])
        if n == self.grad_at:
            out = _NaNGrad.apply(out)
        return out


def make_run(epochs: int, valid: bool = False, **planted: int) -> lw.Run:
    torch.manual_seed(0)
    x, y = make_data(8 * BATCHES)
    spec = lw.setup(
        lambda: Planted(**planted),
        loss=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam,
        metrics=lw.metrics.Accuracy(),
    ).set_opt_hparams(lr=1e-2)
    valid_data = make_data(16, seed=1) if valid else None
    return spec.run((x, y), epochs=epochs, valid_data=valid_data, **OPTIONS)


def weights(run: lw.Run) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in run.ctx.model.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def past_the_nan() -> tuple[lw.Run, dict[str, torch.Tensor]]:
    """A run with a NaN planted at batch 4,321 that trained on past it, to batch 4,400;
    and the weights of a fresh run stopped at batch 4,320's end."""
    ref = make_run(44, nan_at=4321)
    ref.step("batch", n=4320)
    before = weights(ref)
    run = make_run(44, nan_at=4321)
    run.resume()
    assert run.state == "done"
    assert not torch.isfinite(run.ctx.model.net[0].weight).all()  # it went on, NaN
    return run, before


def test_a_planted_nan_at_batch_4321_from_the_loss_record(
    past_the_nan: tuple[lw.Run, dict[str, torch.Tensor]],
) -> None:
    run, before = past_the_nan
    found = run.find("nonfinite_loss")
    assert found is not None
    assert (found.batch, found.epoch, found.iter, found.how) == (4321, 44, 21, "record")
    assert found.replayed <= BATCHES  # at most the epoch's start to the batch
    assert math.isnan(found.value)
    assert (run.state, run.event) == ("paused", lw.Event.on_train_batch_begin)
    assert (run.ctx.epoch, run.ctx.iter) == (44, 21)
    assert same(weights(run), before)  # exactly the run stopped at the batch before
    run.step(lw.Event.on_train_batch_after_pred)  # step into it: the NaN is made here
    assert not torch.isfinite(run.ctx.pred).all()
    assert torch.isfinite(run.ctx.input).all()


def test_a_planted_nan_by_the_snapshots_and_one_replayed_stretch(
    past_the_nan: tuple[lw.Run, dict[str, torch.Tensor]],
) -> None:
    run, before = past_the_nan
    run.resume()  # back to the end first (the record holds up to where the run is)
    found = run.find("nan")
    assert found is not None
    assert (found.batch, found.how, found.detail) == (
        4321,
        "snapshots and replay",
        "non-finite loss",
    )
    # one stretch between the last finite snapshot (the end of epoch 43) and the NaN, then
    # the landing from a resume point kept on the way
    assert found.replayed <= 21 + 21
    assert "4321" in str(found)
    assert "replayed" in str(found)
    assert same(weights(run), before)


def test_a_nan_gradient_under_a_finite_loss() -> None:
    run = make_run(3, grad_at=150)
    run.resume()
    found = run.find("nan")
    assert found is not None
    assert found.batch == 150
    assert found.detail.startswith("non-finite gradient of net.")
    run.resume()  # back to the end: the record holds up to where the run is
    late = run.find("nonfinite_loss")  # the loss went NaN only at the next batch
    assert late is not None
    assert late.batch == 151
    run.resume()
    only = run.find("nonfinite_gradients")  # replays the whole history kept
    assert only is not None
    assert (only.batch, only.how) == (150, "replay")


def test_the_biggest_spike_and_the_first_over_k_times_the_median() -> None:
    run = make_run(3, spike_at=230)
    run.resume()
    done = weights(run)
    found = run.find("spike", k=10)
    assert found is not None
    assert (found.batch, found.how) == (230, "record")
    assert found.value > 10
    run.resume()
    assert same(weights(run), done)  # the replay after it ends where the run had ended
    biggest = run.find("biggest_spike")
    assert biggest is not None
    assert biggest.batch == 230
    run.resume()
    crossing = run.find("loss", above=10)
    assert crossing is not None
    assert crossing.batch == 230


def test_spike_ratios_against_the_median_before() -> None:
    losses = torch.tensor([1.0] * 20 + [30.0] + [1.0] * 5 + [math.nan])
    ratios = spike_ratios(losses, torch.ones(27, dtype=torch.bool), window=100)
    assert torch.isnan(ratios[:10]).all()  # fewer than ten before: no median yet
    assert ratios[20] == 30
    assert ratios[21] == 1
    assert torch.isnan(ratios[26])


def test_an_epoch_metric_crossing_a_value_goes_to_that_epochs_first_batch() -> None:
    run = make_run(3, valid=True)
    run.resume()
    losses = [row["loss"] for row in run.ctx.records["metrics"]["valid"]]
    threshold = losses[1] + 1e-9  # crossed first at epoch 2
    assert losses[0] > threshold
    found = run.find("valid_loss", below=threshold)
    assert found is not None
    assert (found.epoch, found.iter, found.batch) == (2, 1, BATCHES + 1)
    assert found.value == losses[1]


def test_any_predicate_on_the_context_by_a_replay() -> None:
    run = make_run(3)
    run.step("batch", n=250)
    found = run.find(lambda ctx: ctx.epoch == 2 and ctx.iter == 7)
    assert found is not None
    assert (found.epoch, found.iter, found.how) == (2, 7, "replay")
    assert (run.ctx.epoch, run.ctx.iter, run.event) == (2, 7, lw.Event.on_train_batch_begin)


def test_nothing_found_leaves_the_run_where_it_was() -> None:
    run = make_run(2)
    run.step("batch", n=150)
    before = weights(run)
    assert run.find("nan") is None
    assert run.find(lambda ctx: False) is None  # a whole replay, back to here
    assert (run.ctx.epoch, run.ctx.iter, run.event) == (2, 50, lw.Event.on_train_batch_end)
    assert same(weights(run), before)


def test_what_find_refuses() -> None:
    run = make_run(1)
    run.step("batch", n=3)
    with pytest.raises(ConfigError, match="unknown condition 'banana'"):
        run.find("banana")
    with pytest.raises(ConfigError, match="above= does not apply to spike"):
        run.find("spike", above=2)
    with pytest.raises(ConfigError, match="give above= or below="):
        run.find("loss")
    with pytest.raises(ConfigError, match="k must be a number > 1"):
        run.find("spike", k=0.5)
    with pytest.raises(ConfigError, match="names no metric"):
        run.find("test_acc", above=1)
    torch.manual_seed(0)
    fitted = lw.setup(
        lambda: Planted(), loss=nn.CrossEntropyLoss(), optimizer=torch.optim.Adam
    ).fit(make_data(32), 1, **OPTIONS)
    with pytest.raises(ConfigError, match="keeps snapshots and its loss record"):
        fitted.run.find("nan")

"""The LR finder: the lr schedule it really applies, divergence, several optimizers, the plot,
and a Setup (and RNG) left as they were."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import luzwidget as lw
from luzwidget.lr_finder import LRFinderResult, smooth
from tests.training_helpers import FIT, Net, TwoOpt, make_data, make_spec, same_weights


class AppliedLR(lw.Callback):
    """The lr each optimizer really had at each optimizer step."""

    def __init__(self) -> None:
        self.seen: list[dict[str, float]] = []

    def on_train_batch_before_step(self, ctx):
        if ctx.opt_nm == list(ctx.optimizers)[-1]:
            self.seen.append({n: o.param_groups[0]["lr"] for n, o in ctx.optimizers.items()})


def test_log_spaced_schedule_is_applied_one_lr_per_batch():
    applied = AppliedLR()
    result = make_spec().lr_finder(
        make_data(), steps=20, start_lr=1e-5, end_lr=1.0, diverge=None, callbacks=[applied], **FIT
    )
    expected = np.geomspace(1e-5, 1.0, 20)
    assert len(result) == 20
    assert list(result.frame.columns) == ["lr", "loss"]
    np.testing.assert_allclose(result.frame["lr"], expected, rtol=1e-12)
    assert [s["opt"] for s in applied.seen] == list(result["lr"])
    assert result.records["lr_finder"]["lr"] == list(result["lr"])
    assert result.records["lr_finder"]["loss"] == list(result["loss"])
    assert result.frame["loss"].notna().all()


def test_linear_schedule_and_more_steps_than_batches():
    result = make_spec().lr_finder(
        make_data(32), steps=10, start_lr=0.001, end_lr=0.01, log_spaced=False, diverge=None, **FIT
    )  # 4 batches an epoch
    np.testing.assert_allclose(result["lr"], np.linspace(0.001, 0.01, 10), rtol=1e-12)
    assert len(result) == 10
    # Two whole epochs (logged), then 2 batches of a third, stopped before its end.
    assert len(result.records["metrics"]["train"]) == 2


def test_stops_when_the_loss_diverges():
    torch.manual_seed(0)
    spec = lw.setup(Net, loss=nn.CrossEntropyLoss(), optimizer=torch.optim.SGD)
    result = spec.lr_finder(make_data(256), steps=100, start_lr=1e-3, end_lr=1e4, **FIT)
    assert result.diverged
    assert 10 < len(result) < 100
    smoothed = result.smoothed()
    assert smoothed[-1] > 4 * smoothed[:-1].min() or not np.isfinite(smoothed[-1])
    assert "diverged" in repr(result)


def test_several_optimizers_all_get_the_schedule():
    applied = AppliedLR()
    spec = lw.setup(TwoOpt, loss=nn.CrossEntropyLoss())
    result = spec.lr_finder(make_data(), steps=8, diverge=None, callbacks=[applied], **FIT)
    assert list(result.frame.columns) == ["lr", "loss", "loss_a", "loss_b"]
    assert [s["a"] for s in applied.seen] == [s["b"] for s in applied.seen] == list(result["lr"])
    np.testing.assert_allclose(result["loss"], result["loss_a"] + result["loss_b"])
    only_b = AppliedLR()
    spec.lr_finder(make_data(), steps=8, opt_name="b", callbacks=[only_b], **FIT)
    assert {s["a"] for s in only_b.seen} == {0.1}  # TwoOpt's default lr, untouched


def test_the_setup_and_the_rng_are_left_as_they_were():
    torch.manual_seed(0)
    plain = make_spec().fit(make_data(), epochs=1, **FIT)
    torch.manual_seed(0)
    spec = make_spec()
    spec.lr_finder(make_data(), steps=10, **FIT)
    after = spec.fit(make_data(), epochs=1, **FIT)
    assert same_weights(after.model, plain.model)


def test_a_built_module_and_optimizer_are_copied_not_trained():
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    spec = lw.setup(model, loss=nn.CrossEntropyLoss(), optimizer=opt)
    spec.lr_finder(make_data(), steps=10, start_lr=0.01, end_lr=1.0, **FIT)
    assert same_weights(model.state_dict(), before)
    assert opt.param_groups[0]["lr"] == 0.5
    assert opt.state_dict()["state"] == {}


def test_smoothing_is_a_bias_corrected_ema():
    np.testing.assert_allclose(smooth([1.0, 1.0, 1.0]), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(smooth([2.0, 0.0]), [2.0, 0.18 / 0.19])


def synthetic(loss):
    lr = np.geomspace(1e-5, 1, len(loss))
    return LRFinderResult({"lr_finder": {"lr": list(lr), "loss": list(loss)}})


def test_suggestion_is_the_steepest_fall_before_the_minimum():
    # A loss flat, then falling fastest around index 30, bottoming at 45, then exploding.
    i = np.arange(60)
    loss = 2 - 1.5 / (1 + np.exp(-(i - 30) / 3.0))
    loss[46:] = loss[45] * np.exp(np.arange(14))
    result = synthetic(loss)
    lr = result.frame["lr"].to_numpy()
    assert result.suggested_lr in set(lr[28:36])
    assert synthetic([1.0, 2.0, 3.0, 4.0]).suggested_lr is None  # never falls


def test_plot_draws_the_smoothed_loss_on_a_log_axis_with_the_suggestion():
    i = np.arange(60)
    result = synthetic(2 - 1.5 / (1 + np.exp(-(i - 30) / 3.0)))
    fig = result.plot()
    assert fig.layout.xaxis.type == "log"
    names = [t.name for t in fig.data]
    assert names == ["loss", "smoothed (beta 0.9)", "suggested lr"]
    np.testing.assert_allclose(fig.data[1].y, result.smoothed())
    assert fig.data[2].x[0] == result.suggested_lr
    assert [t.name for t in result.plot(raw=False).data] == names[1:]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"steps": 1}, "steps must be an int >= 2"),
        ({"start_lr": 0.1, "end_lr": 0.01}, "must be larger"),
        ({"end_lr": float("inf")}, "end_lr must be a finite number"),
        ({"diverge": 0.5}, "diverge"),
        ({"valid_data": 0.2}, "drop valid_data"),
        ({"opt_name": "zzz"}, "'zzz' is not an optimizer"),
    ],
)
def test_bad_arguments(kwargs, fragment):
    with pytest.raises((lw.ConfigError, lw.CallbackError), match=fragment):
        make_spec().lr_finder(make_data(), **{**FIT, **kwargs})

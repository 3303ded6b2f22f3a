"""LRScheduler steps at its event, feeds metric schedulers the epoch mean, handles optimizers."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.optim.lr_scheduler import ReduceLROnPlateau, StepLR

import luzwidget as lw
from luzwidget.callbacks import LRScheduler
from tests.training_helpers import FIT, TwoOpt, make_data, make_spec


class LRs(lw.Callback):
    """The learning rate of every optimizer at each epoch's begin."""

    def __init__(self) -> None:
        self.seen: list[dict[str, float]] = []

    def on_epoch_begin(self, ctx: lw.Context) -> None:
        self.seen.append({n: o.param_groups[0]["lr"] for n, o in ctx.optimizers.items()})


class SpyPlateau(ReduceLROnPlateau):
    """ReduceLROnPlateau that remembers the metric values it was given."""

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.given: list[float] = []

    def step(self, metrics, epoch=None):
        self.given.append(metrics)
        super().step(metrics)


def two_opt_spec():
    return lw.setup(TwoOpt, loss=nn.CrossEntropyLoss()).set_opt_hparams(lr=0.1)


def test_step_lr_at_each_epoch_end():
    lrs = LRs()
    fitted = make_spec(lr=0.1).fit(
        make_data(), epochs=3, callbacks=[LRScheduler(StepLR, step_size=1, gamma=0.5), lrs], **FIT
    )
    assert [s["opt"] for s in lrs.seen] == [0.1, 0.05, 0.025]
    assert fitted.optimizers["opt"].param_groups[0]["lr"] == 0.0125


def test_per_batch_schedule():
    cb = LRScheduler(StepLR, call_on="on_train_batch_end", step_size=1, gamma=0.5)
    fitted = make_spec(lr=1.0).fit(make_data(32), epochs=1, callbacks=[cb], **FIT)  # 4 batches
    assert fitted.optimizers["opt"].param_groups[0]["lr"] == 0.5**4


def test_metric_schedulers_get_the_epoch_mean_of_the_validation_loss():
    cb = LRScheduler(SpyPlateau, patience=0)
    fitted = make_spec().fit(
        make_data(), epochs=3, valid_data=make_data(32, seed=1), callbacks=[cb], **FIT
    )
    means = [m["loss"] for m in fitted.records["metrics"]["valid"]]
    assert cb.schedulers["opt"].given == means


def test_metric_schedulers_fall_back_to_the_training_loss_or_take_a_monitor():
    cb = LRScheduler(SpyPlateau)
    fitted = make_spec().fit(make_data(), epochs=2, callbacks=[cb], **FIT)
    assert cb.schedulers["opt"].given == [m["loss"] for m in fitted.records["metrics"]["train"]]
    cb = LRScheduler(SpyPlateau, monitor="train_acc")
    spec = make_spec(metrics=[lw.metrics.Accuracy()])
    fitted = spec.fit(make_data(), epochs=2, callbacks=[cb], **FIT)
    assert cb.schedulers["opt"].given == [m["acc"] for m in fitted.records["metrics"]["train"]]


def test_reduce_on_plateau_really_reduces():
    class Rising(lw.Callback):  # a validation loss that only gets worse
        def on_valid_end(self, ctx):
            ctx.log_metric("loss", float(ctx.epoch))

    lrs = LRs()
    make_spec(lr=0.1).fit(
        make_data(),
        epochs=4,
        valid_data=make_data(16, seed=1),
        callbacks=[Rising(), LRScheduler(ReduceLROnPlateau, patience=0), lrs],
        **FIT,
    )
    assert [round(s["opt"], 6) for s in lrs.seen] == [0.1, 0.1, 0.01, 0.001]


def test_opt_name_picks_one_of_several_optimizers():
    lrs = LRs()
    cb = LRScheduler(StepLR, opt_name="b", step_size=1, gamma=0.1)
    two_opt_spec().fit(make_data(), epochs=3, callbacks=[cb, lrs], **FIT)
    assert [round(s["a"], 6) for s in lrs.seen] == [0.1, 0.1, 0.1]
    assert [round(s["b"], 6) for s in lrs.seen] == [0.1, 0.01, 0.001]
    assert list(cb.schedulers) == ["b"]


def test_every_optimizer_gets_its_own_scheduler_and_own_loss():
    cb = LRScheduler(SpyPlateau)
    fitted = two_opt_spec().fit(
        make_data(), epochs=2, valid_data=make_data(16, seed=1), callbacks=[cb], **FIT
    )
    valid = fitted.records["metrics"]["valid"]
    assert cb.schedulers["a"].given == [m["loss_a"] for m in valid]
    assert cb.schedulers["b"].given == [m["loss_b"] for m in valid]


def test_unknown_optimizer_name_lists_the_real_ones():
    with pytest.raises(lw.CallbackError, match=r"opt_name 'c' .* 'a', 'b'"):
        two_opt_spec().fit(
            make_data(), epochs=1, callbacks=[LRScheduler(StepLR, opt_name="c", step_size=1)], **FIT
        )


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"scheduler_factory": 3}, "callable"),
        ({"scheduler_factory": StepLR, "call_on": "on_fit_begin"}, "not a training event"),
        ({"scheduler_factory": StepLR, "call_on": "on_epoch_finish"}, "is not an event"),
    ],
)
def test_bad_arguments(kwargs, fragment):
    with pytest.raises(lw.ConfigError, match=fragment):
        LRScheduler(**kwargs)


def test_state_dict_is_loaded_into_schedulers_built_later():
    cb = LRScheduler(StepLR, step_size=1, gamma=0.5)
    make_spec(lr=0.1).fit(make_data(), epochs=2, callbacks=[cb], **FIT)
    state = cb.state_dict()
    assert state["opt"]["last_epoch"] == 2
    again = LRScheduler(StepLR, step_size=1, gamma=0.5)
    again.load_state_dict(state)  # not built yet: kept for on_fit_begin
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    ctx = lw.Context(optimizers={"opt": opt})
    again.on_fit_begin(ctx)
    assert again.schedulers["opt"].last_epoch == 2

"""EarlyStopping stops at the exact epoch a scripted metric sequence implies."""

from __future__ import annotations

import pytest

import luzwidget as lw
from luzwidget.callbacks import EarlyStopping
from tests.training_helpers import FIT, Events, Script, make_data, make_spec


def fit_scripted(values, epochs=10, name="fake_loss", **es):
    stopper = EarlyStopping(monitor=es.pop("monitor", f"valid_{name}"), **es)
    events = Events("on_early_stopping", "on_fit_end")
    fitted = make_spec().fit(
        make_data(), epochs=epochs, callbacks=[Script(values, name), stopper, events], **FIT
    )
    return fitted, stopper, events


@pytest.mark.parametrize(
    ("values", "patience", "stop_at"),
    [
        ([5, 4, 4.5, 3, 2, 1], 0, 3),  # first epoch that does not improve
        ([5, 4, 4, 3, 2, 1], 0, 3),  # equal is not better
        ([5, 4, 4, 3, 2, 1], 1, 3),  # patience 1 acts as 0: improving epochs never stop
        ([5, 4, 4.1, 4.2, 4.05, 3, 2], 2, 4),  # the second epoch in a row without improvement
        ([5, 4, 4.1, 3, 3.5, 3.6, 3.7, 1], 2, 6),  # an improvement resets the count
        ([5, 6, 7, 8, 9, 10], 0, 2),  # after the first epoch, never at it
        ([5, 4, 3, 2, 1, 0], 0, None),  # always improving: runs all epochs
    ],
)
def test_patience_counts_epochs_without_improvement(values, patience, stop_at):
    fitted, stopper, events = fit_scripted(values, epochs=len(values), patience=patience)
    expected = stop_at or len(values)
    assert fitted.ctx.epoch == expected
    assert len(fitted.records["metrics"]["train"]) == expected
    assert stopper.stopped_epoch == (stop_at or 0)
    fired = [name for name, _ in events.seen]
    assert fired == (["on_early_stopping", "on_fit_end"] if stop_at else ["on_fit_end"])


@pytest.mark.parametrize(("patience", "epochs_trained"), [(0, 2), (1, 2), (2, 3), (3, 4)])
def test_a_constant_loss_stops_after_patience_epochs_without_improvement(patience, epochs_trained):
    # As luz's docs, Keras and Lightning: stop when wait >= patience.
    fitted, stopper, _ = fit_scripted([1.0] * 10, patience=patience)
    assert fitted.ctx.epoch == stopper.stopped_epoch == epochs_trained
    assert (stopper.best, stopper.best_epoch) == (1.0, 1)
    assert stopper.wait == max(patience, 1)


def test_min_delta_requires_a_larger_improvement():
    # 1.0 -> 0.95 improves by exactly min_delta: not more than it, so no improvement.
    fitted, _, _ = fit_scripted([1.0, 0.95, 0.5], min_delta=0.05)
    assert fitted.ctx.epoch == 2
    fitted, _, _ = fit_scripted([1.0, 0.9, 0.8, 0.79], epochs=4, min_delta=0.05)
    assert fitted.ctx.epoch == 4


def test_mode_max_and_metric_names_with_underscores():
    fitted, stopper, _ = fit_scripted([0.5, 0.6, 0.55, 0.9], name="binary_acc", mode="max")
    assert fitted.ctx.epoch == 3
    assert (stopper.best, stopper.best_epoch) == (0.6, 2)


def test_baseline_must_be_beaten():
    # Epoch 1 does not beat the baseline 0: patience 1 stops right after it.
    fitted, stopper, _ = fit_scripted([2.0, 1.5, 0.5], baseline=0, patience=1)
    assert fitted.ctx.epoch == stopper.stopped_epoch == 1
    assert (stopper.best, stopper.wait) == (0.0, 1)
    # 2.0 and 1.5 do not beat 1.0; patience 2 stops at the second of them.
    fitted, stopper, _ = fit_scripted([2.0, 1.5, 0.5], baseline=1.0, patience=2)
    assert fitted.ctx.epoch == 2
    assert stopper.best == 1.0
    # Beating the baseline counts as an improvement.
    fitted, stopper, _ = fit_scripted([2.0, 0.5, 0.6], baseline=1.0, patience=2, epochs=3)
    assert (fitted.ctx.epoch, stopper.stopped_epoch, stopper.best_epoch) == (3, 0, 2)


@pytest.mark.parametrize(("patience", "stop_at"), [(0, 4), (2, 4), (5, 6)])
def test_never_stops_before_min_epochs(patience, stop_at):
    # Worsening from epoch 2: the wait reaches patience before min_epochs = 4 or after it.
    fitted, stopper, _ = fit_scripted([1, 2, 3, 4, 5, 6, 7], epochs=(4, 7), patience=patience)
    assert fitted.ctx.epoch == stopper.stopped_epoch == stop_at


def test_monitors_the_real_validation_loss_by_default():
    stopper = EarlyStopping(patience=100)
    fitted = make_spec().fit(
        make_data(), epochs=3, valid_data=make_data(32, seed=1), callbacks=[stopper], **FIT
    )
    losses = [m["loss"] for m in fitted.records["metrics"]["valid"]]
    assert stopper.best == min(losses)


def test_missing_metric_is_a_clear_error_at_the_first_epoch_end():
    with pytest.raises(lw.CallbackError) as info:
        make_spec().fit(make_data(), epochs=5, callbacks=[EarlyStopping()], **FIT)
    err = info.value
    assert isinstance(err.cause, lw.ConfigError)
    assert err.epoch == 1
    text = str(err)
    for fragment in ("EarlyStopping", "'valid_loss'", "Logged metrics: train_loss"):
        assert fragment in text
    assert "valid_data" in text  # says how to get validation metrics


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"monitor": "loss"}, "'<set>_<metric>'"),
        ({"monitor": "test_loss"}, "'train' or 'valid'"),
        ({"mode": "auto"}, "mode='auto'"),
        ({"patience": -1}, "patience"),
        ({"min_delta": -0.1}, "min_delta"),
    ],
)
def test_bad_arguments_are_refused(kwargs, fragment):
    with pytest.raises(lw.ConfigError, match="EarlyStopping") as info:
        EarlyStopping(**kwargs)
    assert fragment in str(info.value)


def test_state_dict_round_trip():
    _, stopper, _ = fit_scripted([5, 4, 4.5], patience=3, epochs=3)
    again = EarlyStopping(patience=3)
    again.load_state_dict(stopper.state_dict())
    assert again.state_dict() == {"best": 4.0, "best_epoch": 2, "wait": 1, "stopped_epoch": 0}

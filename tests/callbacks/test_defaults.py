"""The default callbacks: Profile, TrainValid, Metrics, Progress, Interrupt."""

from __future__ import annotations

import re
from typing import Any

import pytest
import torch
import torchmetrics
from torch import nn

import luzwidget as lw
from luzwidget.callbacks import Interrupt, Metrics, Profile, Progress, TrainValid
from luzwidget.callbacks.progress import format_metrics
from luzwidget.core.callback import is_run_bound
from luzwidget.metrics import (
    MAE,
    MSE,
    BinaryAccuracy,
    BinaryAccuracyWithLogits,
    BinaryAUROC,
    Metric,
    MetricError,
    metric_set,
)
from tests.helpers import E, Recorder, make_data, make_spec
from tests.training_helpers import TwoOpt
from tests.training_helpers import make_data as class_data

OPTS = {"batch_size": 16}


def _fit(epochs: int = 2, valid: bool = True, **kwargs: Any) -> lw.Fitted:
    x, y = make_data(64)
    spec = kwargs.pop("spec", None) or make_spec(metrics=kwargs.pop("metrics", None))
    return spec.fit(
        (x, y),
        epochs=epochs,
        valid_data=(x[:40], y[:40]) if valid else None,
        verbose=kwargs.pop("verbose", False),
        dataloader_options=OPTS,
        **kwargs,
    )


def test_default_callbacks_and_their_weights() -> None:
    fitted = _fit(epochs=0)
    assert [type(cb) for cb in fitted.ctx.callbacks if not is_run_bound(cb)] == [
        Profile,
        TrainValid,
        Metrics,
        Interrupt,
        Progress,
    ]  # a blocking fit keeps no automatic snapshots (a run's TakeSnapshots: test_snapshots)
    defaults = [cb for cb in fitted.ctx.callbacks if not is_run_bound(cb)]
    assert [cb.weight for cb in defaults] == [-100, -90, -80, -70, -60]


# -- Profile ----------------------------------------------------------------------------------


def test_profile_logs_seconds_for_fit_epochs_train_and_valid() -> None:
    profile = _fit(epochs=3).records["profile"]
    assert set(profile) == {"fit", "epoch", "train", "valid"}
    assert [len(profile[k]) for k in ("fit", "epoch", "train", "valid")] == [1, 3, 3, 3]
    assert all(isinstance(v, float) and v > 0 for values in profile.values() for v in values)
    for epoch, train, valid in zip(
        profile["epoch"], profile["train"], profile["valid"], strict=True
    ):
        assert epoch >= train + valid
    assert profile["fit"][0] >= sum(profile["epoch"])


def test_profile_without_validation_and_in_evaluate() -> None:
    fitted = _fit(epochs=1, valid=False)
    assert set(fitted.records["profile"]) == {"fit", "epoch", "train"}
    ev = fitted.evaluate(make_data(32))
    assert set(ev.records["profile"]) == {"valid"}


# -- TrainValid ---------------------------------------------------------------------------------


def test_train_valid_switches_model_mode_and_training_flag() -> None:
    model_modes: list[tuple[Any, bool, bool]] = []

    class Modes(Recorder):
        def record(self, ctx: lw.Context, event: Any) -> None:
            if event in (E.on_train_begin, E.on_valid_begin):
                model_modes.append((event, ctx.model.training, ctx.training))

    fitted = _fit(epochs=2, callbacks=[Modes()], spec=make_spec(dropout=0.5))
    assert model_modes == [(E.on_train_begin, True, True), (E.on_valid_begin, False, False)] * 2
    assert not fitted.model.training


# -- Metrics ------------------------------------------------------------------------------------


def test_metrics_are_logged_per_epoch_loss_first() -> None:
    fitted = _fit(epochs=2, metrics=[MAE(), MSE()])
    for set_ in ("train", "valid"):
        entries = fitted.records["metrics"][set_]
        assert len(entries) == 2
        assert [list(e) for e in entries] == [["loss", "mae", "mse"]] * 2
        assert all(isinstance(v, float) for e in entries for v in e.values())
    valid = fitted.records["metrics"]["valid"][-1]
    assert valid["loss"] == pytest.approx(valid["mse"], rel=1e-5)


def test_loss_is_the_average_of_the_batch_losses() -> None:
    losses: list[float] = []

    class Losses(Recorder):
        def record(self, ctx: lw.Context, event: Any) -> None:
            if event is E.on_valid_batch_end and ctx.epoch == 1:
                losses.append((float(ctx.loss), len(ctx.target)))

    fitted = _fit(epochs=1, callbacks=[Losses()])
    assert [n for _, n in losses] == [16, 16, 8]  # a short last validation batch
    weighted = sum(loss * n for loss, n in losses) / 40
    assert fitted.records["metrics"]["valid"][0]["loss"] == pytest.approx(weighted, rel=1e-6)


def test_metrics_are_fresh_per_mode_and_epoch_and_the_prototype_is_untouched() -> None:
    proto = MAE()
    seen: list[Any] = []

    class Objects(Recorder):
        def record(self, ctx: lw.Context, event: Any) -> None:
            if event in (E.on_train_end, E.on_valid_end):
                seen.append(ctx.metrics["train" if ctx.training else "valid"][1])

    fitted = _fit(epochs=2, metrics=[proto], callbacks=[Objects()])
    assert len({id(m) for m in seen}) == 4
    assert all(type(m) is MAE and m is not proto for m in seen)
    assert proto.count == 0  # the prototype is never updated by the loop
    assert all(m.compute() == m.compute() for m in seen)  # each one was updated (not NaN)
    assert "mae" in fitted.records["metrics"]["train"][0]


def test_train_only_and_valid_only_metrics() -> None:
    fitted = _fit(epochs=1, metrics=metric_set(train_metrics=[MAE()], valid_metrics=[MSE()]))
    assert list(fitted.records["metrics"]["train"][0]) == ["loss", "mae"]
    assert list(fitted.records["metrics"]["valid"][0]) == ["loss", "mse"]


def test_a_torchmetrics_metric_works_as_a_metric() -> None:
    fitted = _fit(epochs=1, metrics=[torchmetrics.MeanSquaredError(), MSE()])
    valid = fitted.records["metrics"]["valid"][0]
    assert valid["meansquarederror"] == pytest.approx(valid["mse"], rel=1e-5)


def test_metrics_with_one_abbreviation_are_all_logged() -> None:
    metrics = [BinaryAccuracyWithLogits(), BinaryAUROC(from_logits=True), BinaryAccuracy()]
    x, y = make_data(64)
    y = (y > 0).float()
    fitted = make_spec(metrics=metrics).fit(
        (x, y), epochs=1, valid_data=(x, y), verbose=False, dataloader_options=OPTS
    )
    for set_ in ("train", "valid"):
        assert list(fitted.records["metrics"][set_][0]) == ["loss", "acc", "auc", "acc_2"]
    with torch.no_grad():
        pred = fitted.model.eval()(x)
    valid = fitted.records["metrics"]["valid"][0]
    for name, proto in zip(["acc", "auc", "acc_2"], metrics, strict=True):
        metric = type(proto)(**({"from_logits": True} if name == "auc" else {}))
        metric.update(pred, y)
        assert valid[name] == pytest.approx(metric.compute(), abs=1e-12), name


def test_metrics_can_be_named_with_name_or_a_pair() -> None:
    metrics = metric_set(
        [MAE(), MAE(name="l1"), ("tm_mse", torchmetrics.MeanSquaredError()), MSE()],
        valid_metrics=[MAE()],
    )
    fitted = _fit(epochs=1, metrics=metrics)
    train, valid = fitted.records["metrics"]["train"][0], fitted.records["metrics"]["valid"][0]
    assert list(train) == ["loss", "mae", "l1", "tm_mse", "mse"]
    assert list(valid) == ["loss", "mae", "l1", "tm_mse", "mse", "mae_2"]
    assert valid["l1"] == valid["mae"] == valid["mae_2"]
    assert valid["tm_mse"] == pytest.approx(valid["mse"], rel=1e-5)
    assert fitted.get_metrics().query("metric == 'tm_mse'").shape[0] == 2


def test_a_metric_named_like_a_loss_of_several_optimizers_is_suffixed() -> None:
    class Named(Metric):
        abbrev = "loss_a"

        def update(self, pred: Any, target: Any) -> None: ...

        def compute(self) -> float:
            return 1.0

    spec = lw.setup(TwoOpt, loss=nn.CrossEntropyLoss(), metrics=[Named()])
    fitted = spec.fit(class_data(16), epochs=1, verbose=False, dataloader_options=OPTS)
    assert list(fitted.records["metrics"]["train"][0]) == [
        "loss",
        "loss_a",
        "loss_b",
        "loss_a_2",
    ]
    assert fitted.records["metrics"]["train"][0]["loss_a_2"] == 1.0


class Broken(Metric):
    """Raises in ``update`` or in ``compute``."""

    abbrev = "brk"

    def __init__(self, where: str, name: str | None = None) -> None:
        super().__init__(name=name)
        self.where = where

    def update(self, pred: Any, target: Any) -> None:
        if self.where == "update":
            raise ValueError("pred and target do not match")

    def compute(self) -> float:
        if self.where == "compute":
            raise ZeroDivisionError("no samples")
        return 0.0


@pytest.mark.parametrize(
    ("metrics", "event", "fragment"),
    [
        ([Broken("update")], "on_train_batch_end", "Broken (abbreviation 'brk') raised ValueError"),
        ([Broken("compute")], "on_train_end", "(abbreviation 'brk') raised ZeroDivisionError in"),
        ([MAE(), Broken("x"), Broken("update")], "on_train_batch_end", "logged as 'brk_2'"),
        (
            [Broken("compute", name="mine")],
            "on_train_end",
            "(abbreviation 'brk', logged as 'mine')",
        ),
    ],
)
def test_a_failing_metric_is_named_in_the_error(
    metrics: list[Any], event: str, fragment: str
) -> None:
    with pytest.raises(lw.CallbackError) as info:
        _fit(epochs=1, metrics=metrics)
    err = info.value
    assert err.event == event
    assert isinstance(err.cause, MetricError)
    assert err.cause.metric is not metrics[-1]  # the fresh copy that failed
    assert type(err.cause.metric) is Broken
    original = err.cause.__cause__
    assert isinstance(original, ValueError | ZeroDivisionError)
    assert err.cause.cause is original
    text = str(err)
    assert fragment in text
    method = "update()" if event == "on_train_batch_end" else "compute()"
    assert f"in {method}: {original}" in text
    assert text.startswith(f"Callback Metrics.{event} raised MetricError: metric Broken")


def test_live_metric_objects_are_on_the_context() -> None:
    seen: dict[str, list[str]] = {}

    class Look(Recorder):
        def record(self, ctx: lw.Context, event: Any) -> None:
            if event is E.on_valid_end:
                seen.update({k: [type(m).__name__ for m in v] for k, v in ctx.metrics.items()})

    _fit(epochs=1, metrics=[MAE()], callbacks=[Look()])
    assert seen == {"train": ["LossAverage", "MAE"], "valid": ["LossAverage", "MAE"]}


# -- Progress -----------------------------------------------------------------------------------


def test_progress_is_silent_when_not_verbose(capsys: pytest.CaptureFixture[str]) -> None:
    fitted = _fit(epochs=2, verbose=False)
    fitted.evaluate(make_data(32))
    fitted.predict(make_data(32)[0])
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err == ""


def test_progress_prints_epochs_bars_and_metrics(capsys: pytest.CaptureFixture[str]) -> None:
    _fit(epochs=2, verbose=True, metrics=[MAE()])
    out = capsys.readouterr()
    assert out.out == ""
    lines = [line.strip() for line in re.split(r"[\r\n]", out.err) if line.strip()]
    number = r"\d+\.\d{4}"
    text = [line for line in lines if not line.startswith(("Train", "Valid")) or "metrics" in line]
    assert text == [
        "Epoch 1/2",
        text[1],
        text[2],
        "Epoch 2/2",
        text[4],
        text[5],
    ]
    for line in (text[1], text[4]):
        assert re.fullmatch(rf"Train metrics: Loss: {number} - Mae: {number}", line), line
    for line in (text[2], text[5]):
        assert re.fullmatch(rf"Valid metrics: Loss: {number} - Mae: {number}", line), line
    bars = [line for line in lines if line.startswith(("Train:", "Valid:"))]
    assert any(re.match(r"Train: .*\d+/4 \[", bar) for bar in bars), bars
    assert any(re.match(r"Valid: .*\d+/3 \[", bar) for bar in bars), bars


def test_progress_bar_shows_the_loss_and_rate(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from luzwidget.callbacks import progress

    class Slow(nn.Linear):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            time.sleep(0.12)  # > tqdm's mininterval, so each batch is drawn
            return super().forward(x)

    monkeypatch.setattr(progress, "_REFRESH_S", 0.0)
    x, y = make_data(48)
    spec = (
        lw.setup(Slow, loss=nn.MSELoss(), optimizer=torch.optim.SGD)
        .set_hparams(in_features=4, out_features=1)
        .set_opt_hparams(lr=0.01)
    )
    spec.fit((x, y), epochs=1, verbose=True, dataloader_options=OPTS)
    err = capsys.readouterr().err
    assert re.search(r"Train: +\d+%\|.*\| [123]/3 \[.*it/s, loss=\d+\.\d{4}\]", err), err


def test_progress_with_several_optimizers(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.core.test_loop import _two_part_spec

    _fit(epochs=1, verbose=True, spec=_two_part_spec())
    err = capsys.readouterr().err
    assert re.search(r"Train metrics: Loss: \d+\.\d{4} - Loss_a: \d+\.\d{4} - Loss_b: ", err)


def test_progress_in_evaluate(capsys: pytest.CaptureFixture[str]) -> None:
    fitted = _fit(epochs=1, valid=False)
    capsys.readouterr()
    fitted.evaluate(make_data(32), verbose=True)
    err = capsys.readouterr().err
    assert re.search(r"Valid metrics: Loss: \d+\.\d{4}", err)
    assert "Epoch" not in err


def test_format_metrics() -> None:
    assert format_metrics({"loss": 0.31, "acc": 0.9, "n": 3, "auc": [0.5, 0.7]}) == (
        "Loss: 0.3100 - Acc: 0.9000 - N: 3 - Auc: [0.5, 0.7]"
    )


# -- Interrupt ---------------------------------------------------------------------------------


def test_interrupt_says_where_training_stopped(capsys: pytest.CaptureFixture[str]) -> None:
    ctx = lw.Context(callbacks=[Interrupt()])
    ctx.epoch = 3
    ctx.iter = 7
    ctx.call_callbacks(E.on_interrupt)
    assert capsys.readouterr().err == (
        "[luzwidget] Training interrupted at epoch 3, batch 7; returning the model trained so far. "
        "fitted.run.resume() continues where it stopped.\n"
    )


def test_defaults_of_predict_and_evaluate() -> None:
    kinds: dict[str, list[str]] = {}

    class Grab(lw.Callback):
        def __init__(self, name: str) -> None:
            self.name = name

        def on_predict_begin(self, ctx: lw.Context) -> None:
            kinds[self.name] = [type(cb).__name__ for cb in ctx.callbacks]

        on_valid_begin = on_predict_begin

    fitted = _fit(epochs=1, valid=False)
    x, y = make_data(32)
    fitted.predict(x, callbacks=[Grab("predict")])
    fitted.evaluate((x, y), callbacks=[Grab("evaluate")])
    assert kinds == {
        "predict": ["Interrupt", "Progress", "Grab"],
        "evaluate": ["Profile", "Metrics", "Interrupt", "Progress", "Grab"],
    }


def test_metrics_without_a_target_count_samples_from_the_prediction() -> None:
    x, _ = make_data(64)
    spec = make_spec(loss=lambda pred, target: pred.pow(2).mean())
    fitted = spec.fit(x, epochs=1, verbose=False, dataloader_options=OPTS)
    assert isinstance(fitted.records["metrics"]["train"][0]["loss"], float)


# -- a loss that became NaN or inf is said once, with its epoch and batch (issue 9.17) --------


def _nan_batches(bad: int, n: int = 4) -> list[Any]:
    x, y = make_data(16 * n)
    data = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 16 * n, 16)]
    data[bad - 1] = (torch.full((16, 4), float("nan")), data[bad - 1][1])
    return data


def test_a_blocking_fit_reports_a_nan_loss_once_with_epoch_and_batch(
    capsys: pytest.CaptureFixture[str],
) -> None:
    fitted = make_spec().fit(_nan_batches(3), epochs=3, verbose=False)
    said = capsys.readouterr().err
    assert said.count("[luzwidget]") == 1
    assert "[luzwidget] the training loss became nan at epoch 1, batch 3 " in said
    assert fitted.run.state == "done"


def test_a_nan_loss_batch_counts_skipped_batches(capsys: pytest.CaptureFixture[str]) -> None:
    class SkipTwo(lw.Callback):
        def on_train_batch_begin(self, ctx: lw.Context) -> None:
            if ctx.iter == 2 and ctx.epoch == 1:
                raise RuntimeError("skip me")

    run = make_spec().run(_nan_batches(4), epochs=1, verbose=False, callbacks=[SkipTwo()])
    run.resume()
    run.skip()
    assert run.state == "done"
    assert "epoch 1, batch 4 " in capsys.readouterr().err


def test_a_nan_validation_loss_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    train = _nan_batches(1, n=3)[1:]  # two finite batches
    fitted = make_spec().fit(train, epochs=1, valid_data=_nan_batches(2, n=3), verbose=False)
    assert fitted.run.state == "done"
    assert "validation loss became nan at epoch 1, batch 2 " in capsys.readouterr().err


def test_loss_average_finds_the_first_nonfinite_loss_across_folds() -> None:
    from luzwidget.metrics.base import LossAverage
    from luzwidget.metrics.sums import FOLD_EVERY

    m = LossAverage()
    for i in range(FOLD_EVERY * 2 + 5):
        m.update_loss(torch.tensor(float("inf") if i in (FOLD_EVERY + 7, 2049) else 1.0), 4)
    assert m.first_nonfinite() == FOLD_EVERY + 7
    clean = LossAverage()
    clean.update_loss(torch.tensor(1.0), 4)
    assert clean.first_nonfinite() is None

"""Fitted: predict (stacking any output), evaluate (metrics replaced), get_metrics."""

from __future__ import annotations

from collections import namedtuple
from typing import Any

import pandas as pd
import pytest
import torch
from torch import nn

import luzwidget as lw
from luzwidget.core.records import Records
from luzwidget.fitted import Evaluation, stack_outputs
from luzwidget.metrics import MAE, MSE
from tests.helpers import MLP, SilentStep, make_data, make_spec, snapshot, state_equal

OPTS = {"batch_size": 16}
Out = namedtuple("Out", ["mean", "scale"])


@pytest.fixture(scope="module")
def fitted() -> lw.Fitted:
    torch.manual_seed(0)
    x, y = make_data(64)
    return make_spec(metrics=[MSE()], dropout=0.5).fit(
        (x, y), epochs=2, valid_data=(x[:32], y[:32]), verbose=False, dataloader_options=OPTS
    )


def _fit(module: type[nn.Module], **kwargs: Any) -> lw.Fitted:
    x, y = make_data(32)
    return (
        lw.setup(module, loss=kwargs.pop("loss", nn.MSELoss()), optimizer=torch.optim.SGD)
        .set_opt_hparams(lr=0.01)
        .fit((x, y), epochs=1, verbose=False, **kwargs)
    )


# -- predict ----------------------------------------------------------------------------------


def test_predict_stacks_in_eval_mode_under_no_grad(fitted: lw.Fitted) -> None:
    x, _ = make_data(40, seed=7)
    pred = fitted.predict(x, dataloader_options=OPTS)
    assert pred.shape == (40, 1)
    assert not pred.requires_grad
    fitted.model.eval()
    with torch.no_grad():
        expected = fitted.model(x)
    assert torch.allclose(pred, expected)
    assert torch.equal(fitted.predict(x), pred)  # dropout off: deterministic
    assert torch.is_grad_enabled()


def test_predict_without_stack_gives_the_batches(fitted: lw.Fitted) -> None:
    x, _ = make_data(40, seed=7)
    parts = fitted.predict(x, stack=False, dataloader_options=OPTS)
    assert isinstance(parts, list)
    assert [tuple(p.shape) for p in parts] == [(16, 1), (16, 1), (8, 1)]
    assert torch.equal(torch.cat(parts), fitted.predict(x, dataloader_options=OPTS))


def test_predict_ignores_the_target(fitted: lw.Fitted) -> None:
    x, y = make_data(40, seed=7)
    assert torch.equal(fitted.predict((x, y)), fitted.predict(x))


def test_predict_keeps_the_order_and_every_sample(fitted: lw.Fitted) -> None:
    x, _ = make_data(100, seed=3)
    pred = fitted.predict(x, dataloader_options={"batch_size": 7})
    assert pred.shape == (100, 1)
    assert torch.allclose(pred, fitted.predict(x, dataloader_options={"batch_size": 100}))


def test_predict_on_ready_batches(fitted: lw.Fitted) -> None:
    x, _ = make_data(40, seed=7)
    pred = fitted.predict([(x[:25],), (x[25:],)])
    assert torch.allclose(pred, fitted.predict(x))


class TupleOut(MLP):
    def forward(self, x: torch.Tensor) -> Any:
        h = self.net(x)
        return h, h.exp()


class DictOut(MLP):
    def forward(self, x: torch.Tensor) -> Any:
        h = self.net(x)
        return {"mean": h, "scale": h.exp(), "extra": [h, h * 2]}


class NamedOut(MLP):
    def forward(self, x: torch.Tensor) -> Any:
        h = self.net(x)
        return Out(h, h.exp())


def _first(pred: Any, target: torch.Tensor) -> torch.Tensor:
    if isinstance(pred, dict):
        pred = pred["mean"]
    return nn.functional.mse_loss(pred[0] if isinstance(pred, tuple) else pred, target)


def test_predict_tuple_outputs() -> None:
    f = _fit(TupleOut, loss=_first)
    x, _ = make_data(40, seed=7)
    mean, scale = f.predict(x, dataloader_options=OPTS)
    assert mean.shape == scale.shape == (40, 1)
    assert torch.allclose(scale, mean.exp())
    parts = f.predict(x, stack=False, dataloader_options=OPTS)
    assert len(parts) == 3
    assert all(isinstance(p, tuple) for p in parts)


def test_predict_dict_outputs() -> None:
    f = _fit(DictOut, loss=_first)
    x, _ = make_data(40, seed=7)
    out = f.predict(x, dataloader_options=OPTS)
    assert set(out) == {"mean", "scale", "extra"}
    assert out["mean"].shape == (40, 1)
    assert isinstance(out["extra"], list)
    assert out["extra"][1].shape == (40, 1)
    assert torch.allclose(out["extra"][1], out["mean"] * 2)


def test_predict_namedtuple_outputs() -> None:
    f = _fit(NamedOut, loss=_first)
    x, _ = make_data(40, seed=7)
    out = f.predict(x, dataloader_options=OPTS)
    assert type(out) is Out
    assert out.scale.shape == (40, 1)


def test_predict_distribution_outputs_come_back_as_a_list() -> None:
    class Dist(MLP):
        def predict(self, x: torch.Tensor) -> Any:
            return torch.distributions.Normal(self(x), 1.0)

    f = _fit(Dist)
    x, _ = make_data(40, seed=7)
    out = f.predict(x, dataloader_options=OPTS)
    assert isinstance(out, list)
    assert len(out) == 3
    assert all(isinstance(d, torch.distributions.Normal) for d in out)


def test_the_module_predict_method_is_used() -> None:
    class Classifier(MLP):
        def predict(self, x: torch.Tensor) -> torch.Tensor:
            assert not self.training
            assert not torch.is_grad_enabled()
            return torch.sigmoid(self(x))

    f = _fit(Classifier)
    x, _ = make_data(40, seed=7)
    out = f.predict(x)
    with torch.no_grad():
        assert torch.allclose(out, torch.sigmoid(f.model(x)))
    assert ((out > 0) & (out < 1)).all()


def test_predict_does_not_change_the_model(fitted: lw.Fitted) -> None:
    before = snapshot(fitted.model)
    fitted.predict(make_data(40, seed=7)[0])
    assert state_equal(before, snapshot(fitted.model))


@pytest.mark.parametrize(
    ("outputs", "expected"),
    [
        ([], []),
        ([torch.tensor(1.0), torch.tensor(2.0)], torch.tensor([1.0, 2.0])),
        ([torch.ones(2, 3), torch.zeros(1, 3)], torch.cat([torch.ones(2, 3), torch.zeros(1, 3)])),
    ],
)
def test_stack_outputs(outputs: list[Any], expected: Any) -> None:
    got = stack_outputs(outputs)
    if isinstance(expected, torch.Tensor):
        assert torch.equal(got, expected)
    else:
        assert got == expected


def test_stack_outputs_of_mixed_kinds_returns_the_list() -> None:
    mixed = [torch.ones(2), "two"]
    assert stack_outputs(mixed) is mixed


# -- evaluate ---------------------------------------------------------------------------------


def test_evaluate_with_the_model_metrics(fitted: lw.Fitted) -> None:
    x, y = make_data(40, seed=9)
    ev = fitted.evaluate((x, y), dataloader_options=OPTS)
    assert isinstance(ev, Evaluation)
    fitted.model.eval()
    with torch.no_grad():
        mse = nn.functional.mse_loss(fitted.model(x), y).item()
    assert ev["loss"] == pytest.approx(mse, rel=1e-5)
    assert ev["mse"] == pytest.approx(mse, rel=1e-5)
    frame = ev.get_metrics()
    assert list(frame.columns) == ["set", "metric", "epoch", "value"]
    assert frame[["set", "metric", "epoch"]].values.tolist() == [
        ["valid", "loss", 1],
        ["valid", "mse", 1],
    ]
    assert repr(ev).startswith("<Evaluation loss=")


def test_evaluate_metrics_replace_the_model_metrics(fitted: lw.Fitted) -> None:
    x, y = make_data(40, seed=9)
    ev = fitted.evaluate((x, y), metrics=[MAE()])
    assert set(ev.get_metrics()["metric"]) == {"loss", "mae"}
    with pytest.raises(KeyError, match=r"no metric 'mse'; computed: loss, mae"):
        ev["mse"]


def test_evaluate_does_not_touch_the_model_or_training_records(fitted: lw.Fitted) -> None:
    before = snapshot(fitted.model)
    records = {k: list(v) for k, v in fitted.records["metrics"].items()}
    fitted.evaluate(make_data(40, seed=9))
    assert state_equal(before, snapshot(fitted.model))
    assert {k: list(v) for k, v in fitted.records["metrics"].items()} == records


def test_evaluate_a_module_with_its_own_step() -> None:
    x, y = make_data(32)
    f = (
        lw.setup(SilentStep, optimizer=torch.optim.SGD)
        .set_opt_hparams(lr=0.01)
        .fit((x, y), epochs=1, verbose=False)
    )
    x2, y2 = make_data(40, seed=9)
    before = snapshot(f.model)
    ev = f.evaluate((x2, y2 * 10))
    with torch.no_grad():
        expected = nn.functional.mse_loss(f.model(x2), y2 * 10).item()
    assert ev["loss"] == pytest.approx(expected, rel=1e-5)
    assert state_equal(before, snapshot(f.model))


# -- get_metrics and the rest ------------------------------------------------------------------


def test_get_metrics_is_a_long_table(fitted: lw.Fitted) -> None:
    frame = fitted.get_metrics()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["set", "metric", "epoch", "value"]
    assert len(frame) == 2 * 2 * 2  # sets x metrics x epochs
    assert set(frame["set"]) == {"train", "valid"}
    assert set(frame["metric"]) == {"loss", "mse"}
    assert sorted(set(frame["epoch"])) == [1, 2]
    row = frame[(frame["set"] == "valid") & (frame["metric"] == "loss") & (frame["epoch"] == 2)]
    assert row["value"].item() == fitted.records["metrics"]["valid"][1]["loss"]


def test_metrics_frame_of_nothing_has_the_columns() -> None:
    frame = Records({}).frame()
    assert list(frame.columns) == ["set", "metric", "epoch", "value"]
    assert frame.empty


def test_fitted_attributes(fitted: lw.Fitted) -> None:
    assert fitted.ctx is fitted.run.ctx
    assert fitted.model is fitted.ctx.model
    assert fitted.records is fitted.ctx.records
    assert list(fitted.optimizers) == ["opt"]
    assert fitted.hparams == {"dropout": 0.5}
    assert fitted.opt_hparams == {"lr": 0.05}
    assert repr(fitted).startswith("<Fitted MLP: 2 epochs, last {'train': {'loss': ")


def test_fitted_fit_refused_while_its_run_is_on_an_error() -> None:
    class Boom(lw.Callback):
        def on_train_batch_end(self, ctx: lw.Context) -> None:
            raise RuntimeError("x")

    x, y = make_data(32)
    with pytest.raises(lw.CallbackError) as info:
        make_spec().fit((x, y), callbacks=[Boom()], verbose=False)
    f = lw.Fitted(make_spec(), info.value.run)
    with pytest.raises(lw.RunStateError, match=r"stopped on an error; fitted\.run\.retry"):
        f.fit((x, y))

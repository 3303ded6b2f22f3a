"""run.layers() and run.activations(): values against torch by hand; nothing while nobody looks."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest
import torch
from torch import nn

import luzwidget as lw
from luzwidget.core.engine import engine_of
from luzwidget.insight.layers import LAYER_COLUMNS, LayerTracker
from luzwidget.insight.trackers import ActivationTracker, tracker
from tests.helpers import E, make_data, make_spec

OPTS = {"batch_size": 16}


def _run(**kwargs: Any) -> lw.Run:
    torch.manual_seed(0)
    x, y = make_data(64)
    return make_spec(**kwargs).run((x, y), epochs=2, verbose=False, dataloader_options=OPTS)


def _weights(run: lw.Run) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in run.ctx.model.named_parameters()}


def _in_run(run: lw.Run, kind: type) -> bool:
    return any(isinstance(cb, kind) for cb in run.ctx.callbacks)


def _table_has(run: lw.Run, kind: type) -> bool:
    return any(
        isinstance(getattr(fn, "__self__", None), kind)
        for fns in engine_of(run.ctx).table.values()
        for fn in fns
    )


def test_columns_and_norms_before_any_step() -> None:
    run = _run()
    frame = run.layers()
    assert list(frame.columns) == LAYER_COLUMNS
    model = run.ctx.model
    assert list(frame["name"]) == [n for n, _ in model.named_parameters()]
    assert list(frame["module"]) == ["Linear"] * 4
    assert set(frame["optimizer"]) == {"opt"}
    assert frame["shape"][0] == (8, 4)
    assert frame["numel"][0] == 32
    for row, (_, p) in zip(frame.itertuples(), model.named_parameters(), strict=True):
        assert row.norm == pytest.approx(float(p.detach().norm()), rel=1e-6)
        assert math.isnan(row.grad_norm)  # no backward yet
        assert math.isnan(row.update_norm)
        assert math.isnan(row.update_ratio)
        assert row.nonfinite == 0


def test_sgd_update_is_lr_times_grad_and_matches_the_weights() -> None:
    run = _run(lr=0.05)
    run.step(E.on_train_batch_before_step)
    run.layers()  # arms it at the pause right before the step
    before = _weights(run)
    run.step(E.on_train_batch_after_step)
    frame = run.layers().set_index("name")
    for name, p in run.ctx.model.named_parameters():
        delta = float((p.detach() - before[name]).norm())
        row = frame.loc[name]
        assert row.update_norm == pytest.approx(delta, rel=1e-6)
        assert row.update_norm == pytest.approx(0.05 * float(p.grad.norm()), rel=1e-4)
        assert row.grad_norm == pytest.approx(float(p.grad.norm()), rel=1e-6)
        assert row.update_ratio == pytest.approx(delta / float(p.detach().norm()), rel=1e-5)


def test_adam_update_against_the_weights_each_step_while_stepping() -> None:
    run = _run(optimizer=torch.optim.Adam, lr=0.01)
    run.layers()  # arms it for the next drive
    run.step(E.on_train_batch_before_step)  # the drive ends: disarmed
    assert not _in_run(run, LayerTracker)
    run.layers()
    for _ in range(3):  # step, look, step, look: each step's own update
        before = _weights(run)
        run.step(E.on_train_batch_before_step)  # through after_step, to the next batch's
        frame = run.layers().set_index("name")
        for name, p in run.ctx.model.named_parameters():
            delta = float((p.detach() - before[name]).norm())
            assert delta > 0
            assert frame.loc[name, "update_norm"] == pytest.approx(delta, rel=1e-5)


class TwoParts(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 1)
        self.b = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x) * self.b(x) + self.b(x)

    def set_optimizers(self, lr: float = 0.05) -> dict[str, torch.optim.Optimizer]:
        return {
            "a": torch.optim.SGD(self.a.parameters(), lr=lr),
            "b": torch.optim.Adam(self.b.parameters(), lr=lr),
        }


def test_two_optimizers_one_row_per_parameter_each_its_own_step() -> None:
    torch.manual_seed(0)
    x, y = make_data(32)
    spec = lw.setup(TwoParts, loss=nn.MSELoss()).set_opt_hparams(lr=0.05)
    run = spec.run((x, y), epochs=1, verbose=False, dataloader_options=OPTS)
    run.step(E.on_train_batch_before_step)
    deltas: dict[str, float] = {}
    grads: dict[str, float] = {}
    for expected in ("a", "b"):
        assert run.ctx.opt_nm == expected
        run.layers()  # arms it at this pause, right before this optimizer's step
        names = {id(p) for p in run.ctx.opt.param_groups[0]["params"]}
        before = _weights(run)
        run.step(E.on_train_batch_after_step)
        for name, p in run.ctx.model.named_parameters():
            if id(p) in names:
                deltas[name] = float((p.detach() - before[name]).norm())
                grads[name] = float(p.grad.norm())
        if expected == "a":
            run.step(E.on_train_batch_before_step)
    frame = run.layers().set_index("name")
    assert list(frame.index) == ["a.weight", "a.bias", "b.weight", "b.bias"]
    assert list(frame["optimizer"]) == ["a", "a", "b", "b"]
    for name, delta in deltas.items():
        assert frame.loc[name, "update_norm"] == pytest.approx(delta, rel=1e-5)
    for name in ("a.weight", "a.bias"):  # SGD: lr * the gradient of its own step
        assert deltas[name] == pytest.approx(0.05 * grads[name], rel=1e-4)


def test_stale_update_is_nan_and_nonfinite_counts_weight_and_grad() -> None:
    run = _run()
    run.step(E.on_train_batch_before_step)
    run.layers()
    run.step(E.on_train_batch_after_step)
    assert not run.layers()["update_norm"].isna().any()
    with torch.no_grad():  # the weight changed since the recorded step
        run.ctx.model.net[0].weight.add_(1.0)
        run.ctx.model.net[0].weight[0, 0] = float("nan")
        run.ctx.model.net[0].weight.grad[0, :2] = float("inf")
    frame = run.layers().set_index("name")
    assert math.isnan(frame.loc["net.0.weight", "update_norm"])
    assert not math.isnan(frame.loc["net.0.bias", "update_norm"])
    assert frame.loc["net.0.weight", "nonfinite"] == 3
    assert math.isnan(frame.loc["net.0.weight", "norm"])


def test_free_run_nobody_asked_costs_nothing() -> None:
    run = _run()
    run.resume()
    assert run.state == "done"
    assert not _in_run(run, LayerTracker)
    assert not _table_has(run, LayerTracker)
    assert run.layers()["update_norm"].isna().all()  # nothing was recorded
    assert not _in_run(run, LayerTracker)  # a done run: armed, but no drive follows


def test_armed_by_a_call_only_until_the_drive_ends() -> None:
    run = _run()
    run.step("batch")
    assert not _table_has(run, LayerTracker)
    run.layers()
    assert _in_run(run, LayerTracker)
    before_step = engine_of(run.ctx).table[E.on_train_batch_before_step]
    assert any(getattr(fn, "__self__", None) is tracker(run, LayerTracker) for fn in before_step)
    run.step("batch")
    assert not _in_run(run, LayerTracker)
    assert not _table_has(run, LayerTracker)
    assert not run.layers()["update_norm"].isna().any()  # the step of that drive
    run.step("batch")  # armed again by that call, for this drive
    run.step("batch")  # nobody looked in between: not recorded, the last one is stale
    assert not _in_run(run, LayerTracker)
    assert run.layers()["update_norm"].isna().all()


def test_subscribe_keeps_it_armed_until_unsubscribed() -> None:
    run = _run()
    layer_tracker = tracker(run, LayerTracker)
    layer_tracker.subscribe()
    run.step("batch")
    run.step("batch")
    assert _in_run(run, LayerTracker)
    assert not run.layers()["update_norm"].isna().any()
    layer_tracker.unsubscribe()
    assert _in_run(run, LayerTracker)  # the layers() call armed it for the next drive
    run.step("batch")
    assert not _in_run(run, LayerTracker)


def test_activations_match_the_module_outputs_by_hand() -> None:
    run = _run()
    assert run.activations().empty  # nothing recorded before the first call
    assert _in_run(run, ActivationTracker)
    hooks = sum(len(m._forward_hooks) for m in run.ctx.model.modules())
    assert hooks == 5  # (model), net, net.0, net.1, net.2
    run.step(E.on_train_batch_after_pred)
    assert sum(len(m._forward_hooks) for m in run.ctx.model.modules()) == 0  # drive ended
    frame = run.activations().set_index("name")
    model, x = run.ctx.model, run.ctx.input
    with torch.no_grad():
        hidden = model.net[0](x)
        outputs = {"net.0": hidden, "net.1": model.net[1](hidden), "(model)": run.ctx.pred.detach()}
    for name, out in outputs.items():
        assert frame.loc[name, "shape"] == tuple(out.shape)
        assert frame.loc[name, "mean"] == pytest.approx(float(out.mean()), rel=1e-5, abs=1e-6)
        assert frame.loc[name, "std"] == pytest.approx(float(out.std()), rel=1e-5)
        assert frame.loc[name, "nonfinite"] == 0
    assert frame.loc["net.2", "module"] == "Linear"
    assert isinstance(frame, pd.DataFrame)


def test_norms_of_huge_finite_weights_do_not_overflow() -> None:
    from luzwidget.insight.stats import norm

    assert float(norm(torch.tensor([3e19, 4e19]))) == pytest.approx(5e19)  # float32 squares: inf
    assert float(norm(torch.tensor([3.0, 4.0]))) == pytest.approx(5.0)
    assert math.isinf(float(norm(torch.tensor([1.0, math.inf]))))
    assert math.isnan(float(norm(torch.tensor([1.0, math.nan]))))
    assert float(norm(torch.zeros(0))) == 0.0

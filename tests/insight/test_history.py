"""run.layer_history(): values against torch by hand, planted dead and saturated units, fixed
bins, bounded memory, compiled models, two optimizers; nothing while nobody asks."""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import luzwidget as lw
from luzwidget.core.exceptions import ConfigError
from luzwidget.insight.history import BINS, HISTORY_COLUMNS, MAX_SAMPLES, HistoryTracker
from luzwidget.insight.trackers import tracker
from tests.helpers import make_data, make_spec

OPTS = {"batch_size": 16}  # 64 samples: 4 training batches an epoch


def _run(spec: lw.Setup | None = None, epochs: int = 2, **kwargs: Any) -> lw.Run:
    torch.manual_seed(0)
    x, y = make_data(64)
    spec = make_spec(**kwargs) if spec is None else spec
    return spec.run((x, y), epochs=epochs, verbose=False, dataloader_options=OPTS)


def _weights(run: lw.Run) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in run.ctx.model.named_parameters()}


def _in_run(run: lw.Run) -> bool:
    return any(isinstance(cb, HistoryTracker) for cb in run.ctx.callbacks)


def _hooked(model: nn.Module) -> bool:
    return any(m._forward_hooks for m in model.modules())


def _params(run: lw.Run) -> Any:
    h = run.layer_history()
    return h[h.kind == "parameter"]


def test_nothing_records_and_nothing_is_in_the_run_until_asked() -> None:
    run = _run()
    run.start()
    run.wait()
    assert not _in_run(run)
    assert not _hooked(run.ctx.model)
    assert HistoryTracker not in run.features.insight.views  # never even made


def test_first_call_starts_recording_and_track_layers_false_takes_it_out() -> None:
    run = _run()
    frame = run.layer_history()
    assert list(frame.columns) == HISTORY_COLUMNS
    assert frame.empty
    assert _in_run(run)  # the first call started it
    run.step("batch")
    assert set(run.layer_history()["step"]) == {1}
    assert not _hooked(run.ctx.model)  # hooks only inside a sampled batch
    run.track_layers(False)
    run.step("batch")
    assert not _in_run(run)
    assert set(run.layer_history()["step"]) == {1}  # kept, no new sample


def test_sgd_norms_grads_and_update_ratio_against_torch_each_stepped_batch() -> None:
    run = _run(lr=0.05)
    run.track_layers()
    for step in (1, 2, 3):
        before = _weights(run)
        run.step("batch")  # stepping: every batch sampled
        rows = _params(run)
        rows = rows[rows.step == step].set_index("name")
        for name, p in run.ctx.model.named_parameters():
            w = p.detach()
            delta = float((w - before[name]).norm())
            row = rows.loc[name]
            assert row.norm == pytest.approx(float(w.norm()), rel=1e-6)
            assert row.grad_norm == pytest.approx(float(p.grad.norm()), rel=1e-6)
            assert row.update_norm == pytest.approx(delta, rel=1e-6)
            assert row.update_norm == pytest.approx(0.05 * float(p.grad.norm()), rel=1e-4)
            assert row.update_ratio == pytest.approx(delta / float(w.norm()), rel=1e-5)
            assert row.module == "Linear"
            assert (row.epoch, row.batch) == (1, step)


def test_adam_update_ratio_against_torch() -> None:
    run = _run(optimizer=torch.optim.Adam, lr=0.01)
    run.track_layers()
    for step in (1, 2):
        before = _weights(run)
        run.step("batch")
        rows = _params(run)
        rows = rows[rows.step == step].set_index("name")
        for name, p in run.ctx.model.named_parameters():
            delta = float((p.detach() - before[name]).norm())
            assert rows.loc[name].update_norm == pytest.approx(delta, rel=1e-6)
            ratio = delta / float(p.detach().norm())
            assert rows.loc[name].update_ratio == pytest.approx(ratio, rel=1e-5)
    first = _params(run)
    assert first[first.step == 1].update_norm.gt(0).all()


def _sequential(*layers: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(*layers)


def test_dead_relu_units_planted_by_their_bias() -> None:
    model = _sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    with torch.no_grad():
        model[0].bias[:3] = -1e3  # three units below zero for every input: dead
        model[0].bias[3:] = 1e3  # the others always on
    spec = lw.setup(model, loss=nn.MSELoss(), optimizer=torch.optim.SGD).set_opt_hparams(lr=0.0)
    run = _run(spec)
    run.track_layers()
    run.step("batch")
    mods = run.layer_history().query("kind == 'module'").set_index("name")
    assert mods.loc["1"].dead_frac == pytest.approx(3 / 8)
    assert mods.loc["1"].module == "ReLU"
    assert math.isnan(mods.loc["0"].dead_frac)  # a Linear: not measured
    assert math.isnan(mods.loc["1"].saturated_frac)
    y = torch.relu(model[0](run.ctx.input)).detach()
    assert mods.loc["1"].act_mean == pytest.approx(float(y.mean()), rel=1e-6)
    assert mods.loc["1"].act_std == pytest.approx(float(y.std()), rel=1e-6)


def test_saturated_tanh_and_sigmoid_planted_by_huge_weights() -> None:
    model = _sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 8), nn.Sigmoid(), nn.Linear(8, 1))
    with torch.no_grad():
        model[0].weight.mul_(100.0)
        model[2].weight.mul_(3.0)
    spec = lw.setup(model, loss=nn.MSELoss(), optimizer=torch.optim.SGD).set_opt_hparams(lr=0.0)
    run = _run(spec)
    run.track_layers()
    run.step("batch")
    mods = run.layer_history().query("kind == 'module'").set_index("name")
    t = torch.tanh(model[0](run.ctx.input))
    s = torch.sigmoid(model[2](t))
    expected_t = float((t.abs() > 0.97).float().mean())
    expected_s = float(((s < 0.03) | (s > 0.97)).float().mean())
    assert expected_t > 0.9
    assert mods.loc["1"].saturated_frac == pytest.approx(expected_t)
    assert mods.loc["3"].saturated_frac == pytest.approx(expected_s)
    assert math.isnan(mods.loc["1"].dead_frac)


def test_histograms_keep_the_bins_of_the_first_sample_and_count_every_value() -> None:
    run = _run(lr=0.05)
    run.track_layers()
    run.step("batch", n=3)
    name = "net.0.weight"
    hists = run.layer_histograms(name, "weights")
    edges = hists.attrs["edges"]
    assert list(hists["step"]) == [1, 2, 3]
    assert len(edges) == BINS + 1
    w0 = run.layer_histograms("net.0.weight", "weights")  # same bins on each call
    np.testing.assert_array_equal(w0.attrs["edges"], edges)
    for counts in hists["counts"]:
        assert counts.dtype == np.int32
        assert int(counts.sum()) == 32  # 8x4 weights, each in a bin
    with torch.no_grad():
        run.ctx.model.net[0].weight[0, 0] = 1e6  # far outside: counted in the last bin
    run.step("batch")
    after = run.layer_histograms(name, "weights")
    np.testing.assert_array_equal(after.attrs["edges"], edges)
    assert int(after["counts"].iloc[-1].sum()) == 32
    assert int(after["counts"].iloc[-1][-1]) >= 1
    acts = run.layer_histograms("net.1", "acts")  # ReLU outputs: no negative value, [0, r]
    assert acts.attrs["edges"][0] == 0.0
    assert int(acts["counts"].iloc[0].sum()) == 16 * 8
    grads = run.layer_histograms("net.2.bias", "grads")
    assert int(grads["counts"].iloc[0].sum()) == 1


def test_histogram_arguments_are_checked() -> None:
    run = _run()
    run.track_layers()
    run.step("batch")
    with pytest.raises(ConfigError, match="what must be one of"):
        run.layer_histograms("net.0.weight", "outputs")
    with pytest.raises(ConfigError, match="no weights histogram of 'nope'"):
        run.layer_histograms("nope", "weights")
    with pytest.raises(ConfigError, match="every_s must be"):
        run.track_layers(every_s=-1)


def test_memory_is_a_ring_of_the_last_samples() -> None:
    run = _run()
    run.track_layers()
    history = tracker(run, HistoryTracker)
    assert history.max_samples == MAX_SAMPLES
    history.samples = deque(maxlen=3)
    run.step("batch", n=7)
    assert list(run.layer_history().drop_duplicates("step")["step"]) == [5, 6, 7]


def test_a_free_run_is_sampled_at_most_every_every_s() -> None:
    run = _run(epochs=3)
    run.track_layers(every_s=1e9)  # one sample (the first batch), then none for a long time
    run.start()
    run.wait()
    assert list(run.layer_history().drop_duplicates("step")["step"]) == [1]
    run2 = _run(epochs=2)
    run2.track_layers(every_s=0)  # every batch
    run2.start()
    run2.wait()
    assert list(run2.layer_history().drop_duplicates("step")["step"]) == list(range(1, 9))
    assert not _hooked(run2.ctx.model)


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


def test_two_optimizers_each_parameter_its_own_step_and_gradient() -> None:
    torch.manual_seed(0)
    spec = lw.setup(TwoParts, loss=nn.MSELoss()).set_opt_hparams(lr=0.05)
    run = _run(spec, epochs=1)
    run.track_layers()
    grads: dict[str, float] = {}
    deltas: dict[str, float] = {}
    model = run.ctx.model

    class Spy(lw.Callback):
        def on_train_batch_before_step(self, ctx: lw.Context) -> None:
            ids = {id(p) for g in ctx.opt.param_groups for p in g["params"]}
            self.before = {n: p.detach().clone() for n, p in model.named_parameters()}
            for n, p in model.named_parameters():
                if id(p) in ids:
                    grads[n] = float(p.grad.norm())

        def on_train_batch_after_step(self, ctx: lw.Context) -> None:
            ids = {id(p) for g in ctx.opt.param_groups for p in g["params"]}
            for n, p in model.named_parameters():
                if id(p) in ids:
                    deltas[n] = float((p.detach() - self.before[n]).norm())

    run.add_callback(Spy())
    run.step("batch")
    rows = _params(run).set_index("name")
    assert sorted(rows.index) == ["a.bias", "a.weight", "b.bias", "b.weight"]
    for name in rows.index:
        assert rows.loc[name].grad_norm == pytest.approx(grads[name], rel=1e-6)
        assert rows.loc[name].update_norm == pytest.approx(deltas[name], rel=1e-6)


class Counting:
    """A torch.compile backend that runs the graph as traced, counting calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, gm: torch.fx.GraphModule, example_inputs: list[Any]) -> Any:
        def call(*args: Any) -> Any:
            self.calls += 1
            return gm.forward(*args)

        return call


def test_a_compiled_model_is_sampled_eagerly_and_named_as_the_module() -> None:
    torch._dynamo.reset()
    backend = Counting()
    model = torch.compile(_sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1)), backend=backend)
    spec = lw.setup(model, loss=nn.MSELoss(), optimizer=torch.optim.SGD).set_opt_hparams(lr=0.05)
    run = _run(spec, epochs=1)
    run.track_layers(every_s=1e9)  # the first batch only
    run.start()
    run.wait()
    frame = run.layer_history()
    assert set(frame.name) == {"0.weight", "0.bias", "2.weight", "2.bias", "0", "1", "2", "(model)"}
    assert backend.calls == 3  # batch 1 ran eagerly (hooked), batches 2-4 compiled
    assert not _hooked(model)


def test_a_rewind_drops_the_samples_the_run_redoes() -> None:
    run = _run()
    run.track_layers()
    run.step("batch", n=4)
    history = tracker(run, HistoryTracker)
    gen = history.gen
    run.rewind(batches=2)  # back to the end of batch 2
    run.step("batch")  # batch 3 again
    assert list(run.layer_history().drop_duplicates("step")["step"]) == [1, 2, 3]
    assert history.gen == gen + 1


def test_a_blocking_fit_records_when_asked_and_refuses_a_bad_value() -> None:
    x, y = make_data(64)
    fitted = make_spec().fit((x, y), 2, verbose=False, dataloader_options=OPTS, layer_history=0)
    steps = fitted.run.layer_history().drop_duplicates("step")["step"]
    assert list(steps) == list(range(1, 9))  # every batch (0 s between samples)
    default = make_spec().fit((x, y), 2, verbose=False, dataloader_options=OPTS, layer_history=True)
    assert list(default.run.layer_history().drop_duplicates("step")["step"])[:1] == [1]
    plain = make_spec().fit((x, y), 2, verbose=False, dataloader_options=OPTS)
    assert HistoryTracker not in plain.run.features.insight.views  # nothing made, nothing paid
    with pytest.raises(ConfigError, match="layer_history must be True, False or a number"):
        make_spec().fit((x, y), 1, verbose=False, layer_history="yes")

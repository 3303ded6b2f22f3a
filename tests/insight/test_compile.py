"""torch.compile: a compiled model trains, steps, shows its layers and activations under
its own names, names a planted NaN, retries and rewinds exactly, and saves and loads
into a plain module and back; luzwidget compiles no more graphs than a hand loop.

Most tests use :class:`Counting`, a backend that runs the traced graph (with
``aot_eager``'s or ``inductor``'s compiler, or as traced) and counts compiles and calls:
which batches ran the compiled code is then a number to assert.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch._dynamo
from torch import nn
from torch._dynamo.utils import counters

import luzwidget as lw
from luzwidget.core.compiled import original
from luzwidget.core.exceptions import CheckpointError
from tests.helpers import MLP, make_data, snapshot, state_equal

OPTS = {"batch_size": 16}  # 64 samples: 4 training batches an epoch; 32 to validate: 2


class Counting:
    """A torch.compile backend: ``inner``'s compiler (None: the graph as traced), counted."""

    def __init__(self, inner: str | None = None) -> None:
        self.inner = inner
        self.compiles = 0
        self.calls = 0

    def __call__(self, gm: torch.fx.GraphModule, example_inputs: list[Any]) -> Callable[..., Any]:
        self.compiles += 1
        compiled = gm.forward
        if self.inner is not None:
            compiled = torch._dynamo.lookup_backend(self.inner)(gm, example_inputs)

        def call(*args: Any) -> Any:
            self.calls += 1
            return compiled(*args)

        return call


@pytest.fixture(autouse=True)
def _fresh_dynamo() -> None:
    torch._dynamo.reset()  # no graph of another test is reused, counters start at 0
    counters.clear()


def _model(backend: Any, dropout: float = 0.0, way: str = "torch.compile") -> nn.Module:
    torch.manual_seed(0)
    model = MLP(dropout=dropout)
    if way == "torch.compile":
        return torch.compile(model, backend=backend)
    if way == "module.compile":
        model.compile(backend=backend)
    else:  # a compiled submodule
        model.net = torch.compile(model.net, backend=backend)  # type: ignore[assignment]
    return model


def _spec(model: nn.Module) -> lw.Setup:
    return lw.setup(model, loss=nn.MSELoss(), optimizer=torch.optim.SGD).set_opt_hparams(lr=0.05)


def _run(model: nn.Module, epochs: int = 2, valid: bool = False, **kwargs: Any) -> lw.Run:
    x, y = make_data(64)
    if valid:
        kwargs["valid_data"] = (x[:32], y[:32])
    return _spec(model).run((x, y), epochs=epochs, verbose=False, dataloader_options=OPTS, **kwargs)


# -- training ------------------------------------------------------------------------------


def test_fit_runs_the_compiled_forward_each_batch_and_trains_as_the_plain_module() -> None:
    backend = Counting()
    x, y = make_data(64)
    args: dict[str, Any] = {"valid_data": (x[:32], y[:32]), "verbose": False}
    torch.manual_seed(0)
    plain = _spec(MLP()).fit((x, y), 2, dataloader_options=OPTS, **args)
    fitted = _spec(_model(backend)).fit((x, y), 2, dataloader_options=OPTS, **args)
    assert backend.calls == 2 * (4 + 2)  # every training and validation batch, compiled
    assert backend.compiles == 2  # one graph to train, one to validate (under no_grad)
    assert not counters["graph_break"]
    assert state_equal(snapshot(original(fitted.model)), snapshot(plain.model))
    assert torch.equal(fitted.predict(x), plain.predict(x))
    assert fitted.evaluate((x, y))["loss"] == plain.evaluate((x, y))["loss"]


def _hand_loop(model: nn.Module, epochs: int) -> None:
    x, y = make_data(64)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(epochs):
        model.train()
        for xb, yb in zip(x.split(16), y.split(16), strict=True):
            opt.zero_grad()
            nn.functional.mse_loss(model(xb), yb).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            for xb, yb in zip(x[:32].split(16), y[:32].split(16), strict=True):
                nn.functional.mse_loss(model(xb), yb)


def _dynamo_counts(backend: Counting) -> tuple[int, int, int, int, int]:
    graph_breaks = sum(counters["graph_break"].values())
    frames, graphs = counters["frames"]["total"], counters["stats"]["unique_graphs"]
    return backend.compiles, backend.calls, frames, graphs, graph_breaks


def test_stepping_and_looking_compile_no_more_than_a_hand_loop() -> None:
    hand = Counting()
    _hand_loop(_model(hand), epochs=3)
    expected = _dynamo_counts(hand)
    torch._dynamo.reset()
    counters.clear()
    ours = Counting()
    run = _run(_model(ours), epochs=3, valid=True)
    run.step("batch")
    run.layers()  # arms the update tracker: a weights copy per step, no hook
    run.step("batch")
    run.step(lw.Event.on_train_batch_after_loss)
    run.layers()
    run.step("epoch")
    run.resume()
    assert _dynamo_counts(ours) == expected == (2, 3 * (4 + 2), 2, 2, 0)


# -- seeing inside ---------------------------------------------------------------------------


@pytest.mark.parametrize("way", ["torch.compile", "module.compile", "compiled submodule"])
def test_layers_and_activations_use_the_modules_own_names_and_see_every_module(
    way: str,
) -> None:
    backend = Counting()
    run = _run(_model(backend, way=way))
    run.step("batch")  # compiled, traced without hooks
    assert (backend.compiles, backend.calls) == (1, 1)
    frame = run.layers()
    assert list(frame["name"]) == [n for n, _ in MLP().named_parameters()]
    assert list(frame["module"]) == ["Linear"] * 4
    assert run.activations().empty  # armed now, for the next step
    run.step("batch")
    acts = run.activations()
    assert list(acts["name"]) == ["net.0", "net.1", "net.2", "net", "(model)"]
    assert list(acts["module"]) == ["Linear", "ReLU", "Linear", "Sequential", "MLP"]
    assert acts["mean"].iloc[-1] == pytest.approx(float(run.ctx.pred.detach().mean()), rel=1e-6)
    assert (backend.compiles, backend.calls) == (1, 1)  # the hooked batch ran eagerly
    run.step("batch")  # armed by the last activations() call: eager again
    run.step("batch")  # nothing armed: the compiled graph, as traced, not recompiled
    assert (backend.compiles, backend.calls) == (1, 2)
    assert list(run.activations()["name"])[-1] == "(model)"


def test_nonfinite_names_the_module_of_a_nan_planted_after_compiling() -> None:
    backend = Counting("aot_eager")
    model = _model(backend)
    run = _run(model)
    run.step("batch")  # compiled before the watch is on: its graph has no hook
    run.breakpoints.nonfinite = True
    with torch.no_grad():
        original(model).net[2].bias.fill_(float("nan"))  # net.0 and net.1 stay finite
    run.resume()
    assert run.state == "paused"
    assert run.reason == (
        "non-finite output of net.2 (Linear) at on_train_batch_after_pred (epoch 1, batch 2)"
    )
    assert run.breakpoints.watch.origin == ("output", "net.2")
    assert backend.calls == 1  # watched batches run eagerly
    run.breakpoints.nonfinite = False
    with torch.no_grad():
        original(model).net[2].bias.zero_()
    run.step("batch")  # the rest of batch 2, eagerly: it began so
    run.step("batch")
    assert (backend.compiles, backend.calls) == (1, 2)


def test_nonfinite_names_a_nan_gradient_by_the_plain_parameter_name() -> None:
    def loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        zero = (pred - pred.detach()).abs().sqrt().sum()  # 0 forward; d sqrt(0) = inf
        return nn.functional.mse_loss(pred, target) + 0.0 * zero  # 0 * inf: NaN gradients

    run = _spec(_model(Counting("aot_eager"))).run(
        make_data(64), epochs=1, verbose=False, dataloader_options=OPTS
    )
    run.ctx.loss_fn = loss
    run.breakpoints.nonfinite = True
    run.resume()
    assert run.reason == (
        "non-finite gradient of net.0.weight at on_train_batch_before_step (epoch 1, batch 1)"
    )


# -- exact replays ---------------------------------------------------------------------------


class FailOnce(lw.Callback):
    """Raises once at epoch 2, batch 3, after the loss (the forward has run, compiled)."""

    def __init__(self) -> None:
        self.failed = False

    def on_train_batch_after_loss(self, ctx: lw.Context) -> None:
        if not self.failed and (ctx.epoch, ctx.iter) == (2, 3):
            self.failed = True
            raise RuntimeError("once")


def test_retry_after_an_error_is_bit_identical() -> None:
    clean = _run(_model(Counting("aot_eager"), dropout=0.3))
    clean.resume()
    run = _run(_model(Counting("aot_eager"), dropout=0.3), callbacks=[FailOnce()])
    run.resume()
    assert run.state == "error"
    run.retry()
    assert run.state == "done"
    assert state_equal(snapshot(run.ctx.model), snapshot(clean.ctx.model))


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_rewind_and_branch_replay_bit_identically(backend: str) -> None:
    run = _run(_model(Counting(backend), dropout=0.3), epochs=3)
    run.step("epoch")
    run.step("batch")
    run.step("batch")
    snap = run.snapshot("epoch 2, batch 2")  # mid-epoch: a rewind replays from epoch 2's start
    run.resume()
    end = snapshot(run.ctx.model)
    run.rewind(snap)
    assert not run._driver.notice  # the replay reached the snapshot's weights
    run.resume()
    assert state_equal(snapshot(run.ctx.model), end)
    branch = run.branch(snap)
    assert not branch._driver.notice
    branch.resume()
    assert state_equal(snapshot(branch.ctx.model), end)


# -- files -----------------------------------------------------------------------------------


def test_save_writes_the_plain_modules_names_and_load_keeps_the_model_compiled(
    tmp_path: Path,
) -> None:
    x, y = make_data(64)
    fitted = _spec(_model(Counting())).fit((x, y), 1, verbose=False, dataloader_options=OPTS)
    path = lw.save(fitted, tmp_path / "fitted.pt")
    raw = torch.load(path, weights_only=True)
    assert raw["module"] == "tests.helpers:MLP"
    assert list(raw["model"]) == list(MLP().state_dict())
    again = lw.load(path, setup=_spec(_model(Counting())))  # into a compiled instance
    assert isinstance(again.model, torch._dynamo.eval_frame.OptimizedModule)
    assert state_equal(snapshot(original(again.model)), snapshot(original(fitted.model)))
    plain = lw.load(path, setup=lw.setup(MLP, loss=nn.MSELoss(), optimizer=torch.optim.SGD))
    assert state_equal(snapshot(plain.model), snapshot(original(fitted.model)))
    assert torch.equal(plain.predict(x), fitted.predict(x))


def test_keep_best_model_keeps_and_restores_the_modules_own_keys() -> None:
    keep = lw.callbacks.KeepBestModel(monitor="train_loss", mode="max")  # the worst: epoch 1
    run = _run(_model(Counting()), epochs=2, callbacks=[keep])
    run.step("epoch")
    after_epoch_1 = snapshot(original(run.ctx.model))
    run.resume()
    assert keep.best_epoch == 1
    assert list(keep.state_dict()["weights"]) == list(MLP().state_dict())
    assert state_equal(snapshot(original(run.ctx.model)), after_epoch_1)


def test_weights_load_between_compiled_and_plain_modules(tmp_path: Path) -> None:
    compiled = _model(Counting())
    torch.manual_seed(1)
    plain = MLP()
    lw.save_weights(compiled, tmp_path / "c.pt")
    assert list(torch.load(tmp_path / "c.pt", weights_only=True)) == list(plain.state_dict())
    lw.load_weights(plain, tmp_path / "c.pt")
    assert state_equal(snapshot(plain), snapshot(original(compiled)))
    with torch.no_grad():
        plain.net[0].bias.add_(1.0)
    lw.save_weights(plain, tmp_path / "p.pt")
    lw.load_weights(compiled, tmp_path / "p.pt")
    assert state_equal(snapshot(original(compiled)), snapshot(plain))
    torch.save(compiled.state_dict(), tmp_path / "raw.pt")  # torch's keys: _orig_mod.net.0...
    fresh = MLP()
    lw.load_weights(fresh, tmp_path / "raw.pt")
    assert state_equal(snapshot(fresh), snapshot(plain))


def test_a_file_of_another_architecture_is_refused_under_the_plain_names(tmp_path: Path) -> None:
    lw.save_weights(torch.compile(MLP(hidden=5), backend=Counting()), tmp_path / "w.pt")
    target = _model(Counting())
    before = snapshot(original(target))
    with pytest.raises(CheckpointError, match=r"different shapes: net\.0\.weight: file \(5, 4\)"):
        lw.load_weights(target, tmp_path / "w.pt")
    assert state_equal(snapshot(original(target)), before)

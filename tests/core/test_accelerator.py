"""Accelerator: device choice, moving model/optimizer state/batches (nested), loader wrapping.

Moves are checked on the ``meta`` device, so they run on a CPU-only machine; the CUDA test
runs where a GPU is present.
"""

from __future__ import annotations

from collections import OrderedDict, namedtuple
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import luzwidget as lw
from luzwidget import Accelerator, ConfigError
from luzwidget.core.accelerator import to_device
from tests.helpers import MLP, E, Recorder, make_data, make_spec

META = torch.device("meta")
Pair = namedtuple("Pair", ["x", "y"])


def _expected_default() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _meta_accelerator(device_placement: bool = True) -> Accelerator:
    acc = Accelerator(cpu=True, device_placement=device_placement)
    acc.device = META
    return acc


def test_default_device_is_cuda_then_mps_then_cpu() -> None:
    assert Accelerator().device == _expected_default()


def test_cpu_true_forces_the_cpu() -> None:
    acc = Accelerator(cpu=True)
    assert acc.device == torch.device("cpu")
    assert repr(acc) == "Accelerator(device=cpu, device_placement=True)"


@pytest.mark.parametrize("index", [-1, "0", 1.0])
def test_bad_cuda_index(index: Any) -> None:
    with pytest.raises(
        ConfigError,
        match=rf"cuda_index must be a non-negative int or None, got "
        rf"{index!r}",
    ):
        Accelerator(cuda_index=index)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message without CUDA")
def test_cuda_index_without_cuda() -> None:
    with pytest.raises(ConfigError, match=r"cuda_index=0 was given, but CUDA is not available"):
        Accelerator(cuda_index=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_index_beyond_the_visible_devices() -> None:
    n = torch.cuda.device_count()
    with pytest.raises(ConfigError, match=rf"cuda_index={n}, but only {n} CUDA device"):
        Accelerator(cuda_index=n)


# -- moving values --------------------------------------------------------------------------------


def test_to_device_moves_nested_batches_and_keeps_their_types() -> None:
    t = torch.ones(2)
    batch = {
        "tuple": (t, [t, {"deep": t}]),
        "pair": Pair(t, t),
        "ordered": OrderedDict(a=t),
        "other": "label",
        "n": 3,
    }
    moved = to_device(batch, META)
    assert type(moved) is dict
    assert type(moved["tuple"]) is tuple
    assert type(moved["tuple"][1]) is list
    assert moved["tuple"][0].device == META
    assert moved["tuple"][1][1]["deep"].device == META
    assert type(moved["pair"]) is Pair
    assert moved["pair"].y.device == META
    assert type(moved["ordered"]) is OrderedDict
    assert moved["ordered"]["a"].device == META
    assert moved["other"] == "label"
    assert moved["n"] == 3
    assert t.device == torch.device("cpu")


def test_prepare_model_moves_the_model() -> None:
    model = MLP()
    assert _meta_accelerator().prepare_model(model) is model
    assert [p.device for p in model.parameters()] == [META] * 4


@pytest.mark.xfail(
    strict=True,
    reason="design decision: prepare_model relies on .to() keeping "
    "Parameter identity and does not re-point a built optimizer's param_groups "
    "(LUZ_REFERENCE: 'prepare() ... re-points optimizer parameter groups'); with "
    "torch's overwrite_module_params_on_conversion the optimizer is refused as "
    "'not the module's'",
)
def test_a_built_optimizer_survives_a_move_that_makes_new_parameters() -> None:
    x, y = make_data(32)
    previous = torch.__future__.get_overwrite_module_params_on_conversion()
    torch.__future__.set_overwrite_module_params_on_conversion(True)
    try:
        net = MLP()
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        fitted = lw.setup(net, loss=torch.nn.MSELoss(), optimizer=opt).fit(
            (x, y), epochs=1, verbose=False, accelerator=Accelerator(cpu=True)
        )
    finally:
        torch.__future__.set_overwrite_module_params_on_conversion(previous)
    assert opt.param_groups[0]["params"][0] is next(iter(fitted.model.parameters()))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_prepare_model_to_cuda_keeps_parameter_identity() -> None:
    model = MLP()
    params = list(model.parameters())
    Accelerator().prepare_model(model)
    assert all(a is b and a.is_cuda for a, b in zip(params, model.parameters(), strict=True))


def test_no_device_placement_moves_nothing() -> None:
    acc = _meta_accelerator(device_placement=False)
    model = acc.prepare_model(MLP())
    assert all(p.device.type == "cpu" for p in model.parameters())
    loader = [(torch.ones(2), torch.ones(2))]
    assert acc.prepare_loader(loader) is loader


def test_prepare_optimizers_moves_state_but_not_step() -> None:
    model = MLP()
    opt = torch.optim.Adam(model.parameters())
    model(torch.ones(3, 4)).sum().backward()
    opt.step()
    _meta_accelerator().prepare_optimizers({"opt": opt})
    state = opt.state[next(iter(model.parameters()))]
    assert state["exp_avg"].device == META
    assert state["exp_avg_sq"].device == META
    assert state["step"].device == torch.device("cpu")


def test_prepare_loader_is_a_noop_on_the_cpu() -> None:
    acc = Accelerator(cpu=True)
    loader = [1, 2]
    assert acc.prepare_loader(loader) is loader
    assert acc.prepare_loader(None) is None


def test_prepare_loader_wraps_so_batches_arrive_on_the_device() -> None:
    x, y = make_data(20)
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    wrapped = _meta_accelerator().prepare_loader(loader)
    assert wrapped is not loader
    assert len(wrapped) == 3
    assert wrapped.batch_size == 8  # attributes pass through
    assert repr(wrapped) == "<DataLoader on meta>"
    got = list(wrapped)
    assert len(got) == 3
    assert all(xb.device == META and yb.device == META for xb, yb in got)
    assert [tuple(xb.shape) for xb, _ in got] == [(8, 4), (8, 4), (4, 4)]
    # wrapping again for the same device keeps it; for another device re-wraps the original
    acc = _meta_accelerator()
    assert acc.prepare_loader(wrapped) is wrapped
    acc.device = torch.device("cuda", 0)
    rewrapped = acc.prepare_loader(wrapped)
    assert rewrapped.loader is loader
    assert rewrapped.device == torch.device("cuda", 0)


def test_fit_uses_the_accelerator_given() -> None:
    x, y = make_data(32)
    acc = Accelerator(cpu=True)
    fitted = make_spec().fit((x, y), epochs=1, accelerator=acc, verbose=False)
    assert fitted.ctx.accelerator is acc
    assert fitted.ctx.device == torch.device("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fit_predict_evaluate_on_cuda() -> None:
    x, y = make_data(64)
    devices: list[torch.device] = []

    class Where(Recorder):
        def record(self, ctx: lw.Context, event: E) -> None:
            if event in (E.on_train_batch_after_pred, E.on_valid_batch_after_loss):
                devices.extend([ctx.input.device, ctx.target.device, ctx.pred.device])

    spec = make_spec(optimizer=torch.optim.Adam, lr=0.01)
    fitted = spec.fit(
        (x, y),
        epochs=2,
        valid_data=(x, y),
        callbacks=[Where()],
        verbose=False,
        accelerator=Accelerator(),
    )
    assert {d.type for d in devices} == {"cuda"}
    assert all(p.is_cuda for p in fitted.model.parameters())
    assert fitted.predict(x).is_cuda
    assert fitted.evaluate((x, y))["loss"] == pytest.approx(
        fitted.records["metrics"]["valid"][-1]["loss"], rel=1e-5
    )
    more = fitted.fit((x, y), epochs=1, verbose=False)
    state = more.optimizers["opt"].state[next(iter(more.model.parameters()))]
    assert state["exp_avg"].is_cuda


@pytest.mark.parametrize("processes", [1, 0, -2, 2.0, True, "2"])
def test_processes_must_be_an_int_of_two_or_more(processes: Any) -> None:
    with pytest.raises(ConfigError, match="processes must be an int >= 2"):
        Accelerator(processes=processes)


def test_processes_needs_a_ddp_strategy() -> None:
    with pytest.raises(ConfigError, match="strategy='ddp'"):
        Accelerator(processes=2, strategy=None)


def test_processes_launches_only_outside_a_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    acc = Accelerator(processes=2, strategy="ddp", cpu=True)  # no process group joined here
    assert acc.launches
    assert acc.world is None
    assert acc.device == torch.device("cpu")
    assert acc.options["strategy"] == "ddp"
    assert acc.options["cpu"] is True
    assert not Accelerator().launches


def test_processes_beyond_the_cuda_devices_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match=r"only 1 is visible.*cpu=True"):
        Accelerator(processes=2)
    assert Accelerator(processes=2, cpu=True).launches

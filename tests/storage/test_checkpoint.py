"""Checkpoint files: plain values only, exact RNG round trips, save/load of fitted models and
weights, and clear errors (naming the file and the mismatch) that change nothing."""

from __future__ import annotations

import os
import random
import stat
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import luzwidget as lw
from luzwidget.storage.checkpoint import capture, get_rng_states, set_rng_states
from luzwidget.storage.files import plain, read, write
from tests.training_helpers import FIT, Net, TwoOpt, make_data, make_spec, same_weights


@pytest.fixture(scope="module")
def fitted():
    torch.manual_seed(0)
    spec = make_spec(metrics=[lw.metrics.Accuracy()]).set_hparams(h=6)
    return spec, spec.fit(make_data(), epochs=2, valid_data=make_data(16, seed=1), **FIT)


# -- plain values and RNG states ---------------------------------------------------------


def test_rng_states_round_trip_exactly_through_a_weights_only_file(tmp_path):
    torch.save(get_rng_states(), tmp_path / "rng.pt")
    first = (
        torch.rand(3),
        np.random.rand(3),
        [random.random() for _ in range(3)],
        np.random.normal(),
    )
    set_rng_states(torch.load(tmp_path / "rng.pt", weights_only=True))
    again = (
        torch.rand(3),
        np.random.rand(3),
        [random.random() for _ in range(3)],
        np.random.normal(),
    )
    assert torch.equal(first[0], again[0])
    assert np.array_equal(first[1], again[1])
    assert first[2:] == again[2:]


def test_plain_converts_what_it_can_and_names_what_it_cannot():
    value = plain({"a": (1, np.float32(2.5)), "b": np.arange(3), "c": None})
    assert value["a"] == [1, 2.5]
    assert torch.equal(value["b"], torch.arange(3))
    with pytest.raises(lw.CheckpointError, match=r"records\['x'\]\[1\] is a object"):
        plain({"x": [1, object()]}, "records")


def test_a_checkpoint_holds_the_whole_run_in_plain_values(fitted, tmp_path):
    _, result = fitted
    state = capture(result.ctx)
    torch.save(state, tmp_path / "ck.pt")
    loaded = torch.load(tmp_path / "ck.pt", weights_only=True)
    assert set(loaded) == {
        "luzwidget",
        "epoch",
        "model",
        "optimizers",
        "optimizer_classes",
        "records",
        "callbacks",
        "rng",
        "loaders",
        "position",
        "batch_size",
    }
    assert loaded["batch_size"] == result.ctx.train_data.batch_size  # run.edit can change it
    assert loaded["loaders"] == {"train": [], "valid": []}  # no loader of its own generator
    assert loaded["optimizer_classes"] == {"opt": "torch.optim.adam:Adam"}
    assert loaded["luzwidget"] == {"kind": "checkpoint", "version": 1}
    assert loaded["epoch"] == 2
    assert same_weights(loaded["model"], result.model)
    assert loaded["records"]["metrics"] == result.records["metrics"]
    assert loaded["optimizers"]["opt"]["state"][0]["step"] == 16


# -- save / load of a fitted model -------------------------------------------------------


def test_save_and_load_with_the_setup(fitted, tmp_path):
    _, result = fitted
    lw.save(result, tmp_path / "model.pt")
    torch.load(tmp_path / "model.pt", weights_only=True)  # plain values only
    loaded = lw.load(tmp_path / "model.pt", setup=make_spec(metrics=[lw.metrics.Accuracy()]))
    x, _ = make_data(20, seed=3)
    assert torch.equal(loaded.predict(x), result.predict(x))
    assert loaded.hparams == {"h": 6}
    assert loaded.records["metrics"] == result.records["metrics"]
    assert loaded.ctx.epoch == 2
    assert loaded.evaluate(make_data(16, seed=1))["loss"] == pytest.approx(
        result.records["metrics"]["valid"][-1]["loss"]
    )


def test_loaded_model_keeps_training_exactly_as_the_original(tmp_path):
    torch.manual_seed(0)
    spec = make_spec()
    original = spec.fit(make_data(), epochs=2, **FIT)
    lw.save(original, tmp_path / "model.pt")
    loaded = lw.load(tmp_path / "model.pt", setup=spec)
    torch.manual_seed(1)
    original = original.fit(make_data(), epochs=2, **FIT)
    torch.manual_seed(1)
    loaded = loaded.fit(make_data(), epochs=2, **FIT)
    assert same_weights(loaded.model, original.model)  # Adam's state came back too
    assert loaded.ctx.epoch == original.ctx.epoch == 4
    assert loaded.records["metrics"] == original.records["metrics"]


def test_load_without_setup_finds_imported_classes(fitted, tmp_path):
    _, result = fitted
    lw.save(result, tmp_path / "model.pt")
    loaded = lw.load(tmp_path / "model.pt")
    assert type(loaded.model) is Net
    assert type(loaded.optimizers["opt"]) is torch.optim.Adam
    x, _ = make_data(8, seed=3)
    assert torch.equal(loaded.predict(x), result.predict(x))
    for a, b in zip(
        loaded.optimizers["opt"].state.values(),
        result.optimizers["opt"].state.values(),
        strict=True,
    ):
        assert torch.equal(a["exp_avg"], b["exp_avg"])


def test_load_without_setup_rebuilds_several_optimizers(tmp_path):
    spec = lw.setup(TwoOpt, loss=nn.CrossEntropyLoss())
    result = spec.fit(make_data(), epochs=1, **FIT)
    lw.save(result, tmp_path / "two.pt")
    loaded = lw.load(tmp_path / "two.pt")
    assert set(loaded.optimizers) == {"a", "b"}
    assert loaded.optimizers["b"].param_groups[0]["params"][0] is loaded.model.b.weight


def test_load_never_imports_what_the_file_names(fitted, tmp_path, monkeypatch):
    _, result = fitted
    monkeypatch.setattr(Net, "__module__", "some_module_not_imported")
    lw.save(result, tmp_path / "model.pt")
    with pytest.raises(lw.CheckpointError, match="not imported; import some_module_not_imported"):
        lw.load(tmp_path / "model.pt")
    assert "some_module_not_imported" not in sys.modules


def test_a_class_defined_in_a_function_needs_the_setup(tmp_path):
    class Local(Net):
        pass

    result = make_spec(Local).fit(make_data(), epochs=1, **FIT)
    lw.save(result, tmp_path / "local.pt")
    with pytest.raises(lw.CheckpointError, match="pass setup="):
        lw.load(tmp_path / "local.pt")
    assert type(lw.load(tmp_path / "local.pt", setup=make_spec(Local)).model) is Local


def test_unstorable_hparams_need_the_setup(tmp_path):
    class Act(nn.Module):
        def __init__(self, act=nn.ReLU):
            super().__init__()
            self.lin = nn.Linear(4, 2)
            self.act = act()

        def forward(self, x):
            return self.act(self.lin(x))

    spec = make_spec(Act).set_hparams(act=nn.Tanh)
    result = spec.fit(make_data(), epochs=1, **FIT)
    lw.save(result, tmp_path / "act.pt")
    with pytest.raises(lw.CheckpointError, match=r"arguments were not stored .*pass the setup"):
        lw.load(tmp_path / "act.pt")
    assert isinstance(lw.load(tmp_path / "act.pt", setup=spec).model.act, nn.Tanh)


def test_a_model_given_as_an_instance_loads_with_its_setup(tmp_path):
    spec = make_spec(nn.Linear(4, 2))
    result = spec.fit(make_data(), epochs=1, **FIT)
    lw.save(result, tmp_path / "inst.pt")
    with pytest.raises(lw.CheckpointError, match=r"a Linear instance, not its class .*setup="):
        lw.load(tmp_path / "inst.pt")
    again = lw.load(tmp_path / "inst.pt", setup=spec)
    assert same_weights(again.model, result.model)
    assert again.predict(make_data()[0][:3]).shape == (3, 2)


# -- weights alone -----------------------------------------------------------------------


def test_save_and_load_weights(fitted, tmp_path):
    _, result = fitted
    lw.save_weights(result, tmp_path / "w.pt")
    assert same_weights(torch.load(tmp_path / "w.pt", weights_only=True), result.model)
    model = Net(h=6)
    assert lw.load_weights(model, tmp_path / "w.pt") is model
    assert same_weights(model, result.model)
    lw.save(result, tmp_path / "fitted.pt")
    torch.save(capture(result.ctx), tmp_path / "ck.pt")
    for source in ("fitted.pt", "ck.pt"):
        other = Net(h=6)
        lw.load_weights(other, tmp_path / source)
        assert same_weights(other, result.model)


# -- errors ------------------------------------------------------------------------------


def test_another_architecture_names_the_file_and_the_mismatch_and_changes_nothing(fitted, tmp_path):
    _, result = fitted
    lw.save_weights(result, tmp_path / "w.pt")
    model = Net(h=8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(lw.CheckpointError) as info:
        lw.load_weights(model, tmp_path / "w.pt")
    text = str(info.value)
    assert "w.pt" in text
    assert "does not match the model Net" in text
    assert "body.0.weight: file (6, 4) vs model (8, 4)" in text
    assert same_weights(model.state_dict(), before)


def test_missing_and_unexpected_keys_are_listed(fitted, tmp_path):
    _, result = fitted
    lw.save_weights(result, tmp_path / "w.pt")
    with pytest.raises(
        lw.CheckpointError,
        match=r"missing from the file: weight, bias; not in "
        r"Linear: body.0.weight",
    ):
        lw.load_weights(nn.Linear(4, 2), tmp_path / "w.pt")


def test_loading_a_fitted_file_with_a_mismatched_setup(fitted, tmp_path):
    _, result = fitted
    lw.save(result, tmp_path / "model.pt")
    spec = lw.setup(nn.Linear(4, 2), loss=nn.CrossEntropyLoss(), optimizer=torch.optim.Adam)
    with pytest.raises(lw.CheckpointError, match="does not match the model Linear"):
        lw.load(tmp_path / "model.pt", setup=spec)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_a_corrupt_file_is_named(fitted, tmp_path, damage):
    _, result = fitted
    path = tmp_path / "model.pt"
    lw.save(result, path)
    data = path.read_bytes()
    path.write_bytes(
        {"truncate": data[: len(data) // 2], "garbage": b"not a checkpoint" * 9, "empty": b""}[
            damage
        ]
    )
    with pytest.raises(
        lw.CheckpointError, match=r"cannot read '.*model\.pt'.*truncated or corrupt"
    ):
        lw.load(path)
    with pytest.raises(lw.CheckpointError, match="cannot read"):
        lw.load_weights(Net(h=6), path)


class Payload:
    """Something pickle would happily rebuild (and run code for)."""


def test_a_file_with_objects_is_refused_not_unpickled(tmp_path):
    torch.save({"luzwidget": {"kind": "fitted"}, "x": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(lw.CheckpointError, match="never unpickles"):
        read(tmp_path / "evil.pt")


def test_the_wrong_kind_of_file(fitted, tmp_path):
    _, result = fitted
    torch.save(capture(result.ctx), tmp_path / "ck.pt")
    with pytest.raises(
        lw.CheckpointError, match="is a luzwidget checkpoint file; expected a luzwidget fitted file"
    ):
        lw.load(tmp_path / "ck.pt")
    with pytest.raises(FileNotFoundError, match=r"nope\.pt"):
        lw.load(tmp_path / "nope.pt")
    with pytest.raises(lw.ConfigError, match="save_weights"):
        lw.save(result.model, tmp_path / "x.pt")


def test_a_refused_file_never_suggests_weights_only_false(tmp_path):
    torch.save({"x": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(lw.CheckpointError) as err:
        read(tmp_path / "evil.pt")
    message = str(err.value)
    assert "not a luzwidget file" in message
    assert "test_checkpoint.Payload" in message  # what it holds, in plain words
    assert "weights_only" not in message
    assert "\x1b" not in message


def test_a_file_from_a_newer_luzwidget_says_so(tmp_path):
    torch.save({"luzwidget": {"kind": "fitted", "version": 99}}, tmp_path / "new.pt")
    with pytest.raises(lw.CheckpointError, match=r"newer luzwidget \(file format 99; .* 1 "):
        lw.load(tmp_path / "new.pt")


# -- optimizer classes (issue 9, point 16) -------------------------------------------------


def test_loading_adam_state_into_sgd_is_refused_naming_both(fitted, tmp_path):
    _, result = fitted  # trained with Adam
    lw.save(result, tmp_path / "adam.pt")
    sgd = lw.setup(Net, loss=nn.CrossEntropyLoss(), optimizer=torch.optim.SGD)
    with pytest.raises(lw.CheckpointError, match=r"saved as Adam .* the run's is SGD"):
        lw.load(tmp_path / "adam.pt", setup=sgd)


def test_a_checkpoint_without_optimizer_classes_still_restores(fitted, tmp_path):
    _, result = fitted
    state = capture(result.ctx)
    del state["optimizer_classes"]  # a file written before classes were recorded
    torch.save(state, tmp_path / "old.pt")
    resumed = (
        make_spec(metrics=[lw.metrics.Accuracy()])
        .set_hparams(h=6)
        .fit(
            make_data(),
            epochs=3,
            callbacks=[
                lw.callbacks.ResumeFromCheckpoint(
                    tmp_path / "old.pt", restore_records=True, restore_optimizer_state=True
                )
            ],
            **FIT,
        )
    )
    assert resumed.ctx.epoch == 3


# -- atomic writes (issue 9, point 14) -----------------------------------------------------


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid  # it has exited (and been reaped): no process has this pid now


def test_a_write_removes_stale_tmp_files_of_its_target_only(tmp_path):
    target = tmp_path / "state.pt"
    stale = tmp_path / f".state.pt.{_dead_pid()}.tmp"
    alive = tmp_path / f".state.pt.{os.getppid()}.tmp"  # a running writer's: kept
    other = tmp_path / f".other.pt.{_dead_pid()}.tmp"  # another target's: kept
    for path in (stale, alive, other):
        path.write_bytes(b"half a file")
    write({"a": 1}, target)
    assert read(target) == {"a": 1}
    assert not stale.exists()
    assert alive.exists()
    assert other.exists()


def test_a_write_fsyncs_the_file_before_the_rename_and_the_directory_after(tmp_path, monkeypatch):
    calls = []
    fsync, replace = os.fsync, os.replace

    def recording_fsync(fd):
        calls.append("fsync dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        fsync(fd)

    def recording_replace(a, b):
        calls.append("rename")
        replace(a, b)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(os, "replace", recording_replace)
    write({"a": 1}, tmp_path / "x.pt")
    expected = (
        ["fsync file", "rename", "fsync dir"] if os.name == "posix" else ["fsync file", "rename"]
    )
    assert calls == expected


# -- loading builds only what the user allows (issue 9, point 19) ---------------------------


class Recorded(Net):
    """Net that records on which device each instance was built."""

    devices: list[str] = []

    def __init__(self, d: int = 4, h: int = 8) -> None:
        Recorded.devices.append(torch.get_default_device().type)
        super().__init__(d, h)


def _tampered(result, tmp_path, **changes):
    lw.save(result, tmp_path / "model.pt")
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    state.update(changes)
    torch.save(state, tmp_path / "tampered.pt")
    return tmp_path / "tampered.pt"


def test_hparams_that_do_not_fit_the_weights_are_refused_before_allocating(tmp_path):
    result = make_spec(Recorded).fit(make_data(), epochs=1, **FIT)
    path = _tampered(result, tmp_path, hparams={"h": 8000})  # Linear(8000, ...) if built
    Recorded.devices.clear()
    with pytest.raises(
        lw.CheckpointError, match=r"body\.0\.weight: file \(8, 4\) vs model \(8000, 4\)"
    ):
        lw.load(path)
    assert Recorded.devices == ["meta"]  # never built for real
    assert [type(lw.load(tmp_path / "model.pt").model)] == [Recorded]
    assert Recorded.devices[1:] == ["meta", "cpu"]


def test_a_path_that_is_not_a_class_of_an_imported_module_is_refused(fitted, tmp_path):
    _, result = fitted
    for bad in ("torch:_dynamo.X", "torch.nn:functional", "builtins:print", 42, "nocolon"):
        with pytest.raises(lw.CheckpointError, match=r"module class|import path"):
            lw.load(_tampered(result, tmp_path, module=bad))


def test_bad_hparams_in_a_file_are_refused(fitted, tmp_path):
    _, result = fitted
    with pytest.raises(lw.CheckpointError, match=r"hparams are list"):
        lw.load(_tampered(result, tmp_path, hparams=[1, 2]))


LOAD_IMPORTS_NOTHING = """
import sys, torch, luzwidget as lw
path = sys.argv[1]
torch.load(path, weights_only=True)  # what reading itself needs, imported once
before = set(sys.modules)
try:
    lw.load(path)
except lw.CheckpointError as exc:
    print("refused:", exc)
print("new modules:", sorted(set(sys.modules) - before))
"""


def test_a_file_cannot_make_python_import_anything(fitted, tmp_path):
    _, result = fitted
    path = _tampered(result, tmp_path, module="torch:_dynamo.X")
    out = subprocess.run(
        [sys.executable, "-c", LOAD_IMPORTS_NOTHING, str(path)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    ).stdout
    assert "refused:" in out
    assert "new modules: []" in out

"""ModelCheckpoint writes the files its path and monitor say; KeepBestModel restores the best."""

from __future__ import annotations

import pytest
import torch

import luzwidget as lw
from luzwidget.callbacks import KeepBestModel, ModelCheckpoint
from tests.training_helpers import FIT, Script, Snapshot, make_data, make_spec, same_weights


def fit(callbacks, epochs=4, **kw):
    return make_spec().fit(make_data(), epochs=epochs, callbacks=callbacks, **{**FIT, **kw})


def test_path_formats_epoch_and_metrics(tmp_path):
    values = [0.9, 0.5, 0.7]
    cb = ModelCheckpoint(
        tmp_path / "ck" / "e{epoch:02d}-{valid_fake_loss:.2f}.pt", monitor="valid_fake_loss"
    )
    snap = Snapshot()
    fit([Script(values), cb, snap], epochs=3)
    names = ["e01-0.90.pt", "e02-0.50.pt", "e03-0.70.pt"]
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == names
    assert cb.saved == [str(tmp_path / "ck" / n) for n in names]
    for epoch, name in enumerate(names, 1):
        state = torch.load(tmp_path / "ck" / name, weights_only=True)
        assert state["epoch"] == epoch
        assert same_weights(state["model"], snap.weights[epoch])
        assert len(state["records"]["metrics"]["train"]) == epoch
        assert set(state["optimizers"]) == {"opt"}
        assert state["callbacks"]["ModelCheckpoint"]["saved"] == cb.saved[: epoch - 1]


def test_save_best_only_saves_at_improvements(tmp_path):
    cb = ModelCheckpoint(str(tmp_path) + "/", monitor="valid_fake_loss", save_best_only=True)
    fit([Script([3, 2, 2.5, 1]), cb])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "epoch-01.pt",
        "epoch-02.pt",
        "epoch-04.pt",
    ]
    assert (cb.best, cb.best_epoch) == (1, 4)


def test_save_best_only_mode_max_with_min_delta(tmp_path):
    cb = ModelCheckpoint(
        tmp_path, monitor="valid_binary_acc", save_best_only=True, mode="max", min_delta=0.05
    )
    fit([Script([0.5, 0.52, 0.6, 0.64], name="binary_acc"), cb])
    assert [p.name for p in sorted(tmp_path.iterdir())] == ["epoch-01.pt", "epoch-03.pt"]


def test_unknown_field_in_path_lists_what_is_available(tmp_path):
    cb = ModelCheckpoint(tmp_path / "{valid_acc:.2f}.pt")
    with pytest.raises(lw.CallbackError) as info:
        fit([cb])
    assert isinstance(info.value.cause, lw.ConfigError)
    assert "valid_acc" in str(info.value)
    assert "Available: epoch, train_loss" in str(info.value)


def test_keep_best_model_restores_the_best_epoch():
    snap = Snapshot()
    best = KeepBestModel(monitor="valid_fake_loss")
    fitted = fit([Script([3, 1, 2, 4]), snap, best])
    assert (best.best, best.best_epoch) == (1, 2)
    assert same_weights(fitted.model, snap.weights[2])
    assert not same_weights(snap.weights[2], snap.weights[4])


def test_keep_best_model_mode_max():
    snap = Snapshot()
    fitted = fit(
        [
            Script([0.1, 0.2, 0.9, 0.3], name="acc"),
            snap,
            KeepBestModel(monitor="valid_acc", mode="max"),
        ]
    )
    assert same_weights(fitted.model, snap.weights[3])


def test_keep_best_model_state_holds_the_weights():
    best = KeepBestModel(monitor="valid_fake_loss")
    fit([Script([3, 1, 2, 4]), best])
    again = KeepBestModel(monitor="valid_fake_loss")
    again.load_state_dict(best.state_dict())
    assert again.best_epoch == 2
    assert same_weights(again.weights, best.weights)

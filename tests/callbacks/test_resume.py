"""ResumeFromCheckpoint restores exactly the parts it is asked to."""

from __future__ import annotations

import copy
import random

import numpy as np
import pytest
import torch

import luzwidget as lw
from luzwidget.callbacks import LRScheduler, ModelCheckpoint, ResumeFromCheckpoint
from tests.training_helpers import Net, NoisyData, Snapshot, make_data, make_spec, same_weights

OPTIONS = {"verbose": False, "dataloader_options": {"batch_size": 8}}


class AtStart(lw.Callback):
    """What the run looks like right after every on_fit_begin (checkpoints restored)."""

    weight = 200

    def on_fit_begin(self, ctx):
        self.weights = {k: v.clone() for k, v in ctx.model.state_dict().items()}
        self.epoch = ctx.epoch
        self.records = copy.deepcopy(ctx.records.get("metrics", {}))
        self.opt_state = ctx.optimizers["opt"].state_dict()["state"]
        self.lr = ctx.optimizers["opt"].param_groups[0]["lr"]


def fit(epochs, callbacks, seed=0, module=Net):
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    x, y = make_data(64)
    return make_spec(module).fit(
        NoisyData(x, y),
        epochs=epochs,
        valid_data=make_data(16, seed=1),
        callbacks=callbacks,
        **OPTIONS,
    )


def sched():
    return LRScheduler(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5)


@pytest.fixture
def checkpoints(tmp_path):
    """A 3-epoch run with a checkpoint per epoch; returns (dir, snapshots, fitted)."""
    snap = Snapshot()
    fitted = fit(3, [ModelCheckpoint(tmp_path / "ck"), snap, sched()])
    return tmp_path / "ck", snap, fitted


def test_by_default_only_the_weights_are_restored(checkpoints):
    folder, snap, _ = checkpoints
    start = AtStart()
    fitted = fit(2, [ResumeFromCheckpoint(folder / "epoch-02.pt"), start], seed=1)
    assert same_weights(start.weights, snap.weights[2])
    assert start.epoch == 0
    assert start.records == {}
    assert start.opt_state == {}  # a fresh Adam
    assert fitted.ctx.epoch == 2


def test_a_directory_means_its_last_checkpoint(checkpoints):
    folder, snap, _ = checkpoints
    start = AtStart()
    fit(1, [ResumeFromCheckpoint(folder), start], seed=1)
    assert same_weights(start.weights, snap.weights[3])


def test_restoring_everything_continues_the_run_exactly(checkpoints):
    folder, _, reference = checkpoints
    start = AtStart()
    resumed = fit(
        3,
        [
            sched(),
            start,
            ResumeFromCheckpoint(
                folder / "epoch-02.pt",
                restore_records=True,
                restore_optimizer_state=True,
                restore_callbacks_state=True,
            ),
        ],
        seed=7,
    )
    assert start.epoch == 2
    assert start.lr == 1e-2 * 0.5**2
    assert len(start.records["train"]) == 2
    assert start.opt_state  # Adam's moments are back
    # Only epoch 3 ran, from the checkpoint's RNG states: the same as the unbroken run.
    assert resumed.ctx.epoch == 3
    assert same_weights(resumed.model, reference.model)
    assert resumed.records["metrics"] == reference.records["metrics"]


def test_optimizer_state_alone(checkpoints):
    folder, *_ = checkpoints
    start = AtStart()
    fit(
        1,
        [
            ResumeFromCheckpoint(
                folder / "epoch-01.pt", restore_model_state=False, restore_optimizer_state=True
            ),
            start,
        ],
        seed=1,
    )
    assert start.opt_state
    assert start.epoch == 0


def test_a_checkpoint_of_another_architecture_changes_nothing(checkpoints, tmp_path):
    folder, *_ = checkpoints

    class Wide(Net):
        def __init__(self):
            super().__init__(h=16)

    class Before(lw.Callback):
        weight = 50

        def on_fit_begin(self, ctx):
            self.weights = {k: v.clone() for k, v in ctx.model.state_dict().items()}

    before = Before()
    with pytest.raises(lw.CallbackError) as info:
        fit(1, [before, ResumeFromCheckpoint(folder / "epoch-01.pt")], module=Wide)
    err = info.value.cause
    assert isinstance(err, lw.CheckpointError)
    text = str(err)
    assert "epoch-01.pt" in text
    assert "body.0.weight: file (8, 4) vs model (16, 4)" in text
    run = info.value.run
    assert same_weights(run.ctx.model.state_dict(), before.weights)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(lw.CallbackError, match="no checkpoint"):
        fit(1, [ResumeFromCheckpoint(tmp_path / "nothing.pt")])

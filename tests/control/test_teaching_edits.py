"""Live edits a teacher needs: weight decay (every group of every optimizer) and batch size
(the training loader re-made at the next epoch's start; kept by snapshots and checkpoints).

Pinned: where each lands, what a refusal says, the command table's and the dashboard's
paths, and a rewind across a batch-size change training exactly as if it never happened.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, SequentialSampler, TensorDataset

import luzwidget as lw
from luzwidget.control import commands
from luzwidget.core.rebatch import batch_size_of
from luzwidget.storage.checkpoint import capture
from luzwidget.widgets.commands import edit_values, handle_command
from tests.training_helpers import same_weights


class Sizes(lw.Callback):
    """The size of every training batch, per epoch."""

    def __init__(self) -> None:
        self.sizes: dict[int, list[int]] = {}

    def on_train_batch_begin(self, ctx: lw.Context) -> None:
        self.sizes.setdefault(int(ctx.epoch), []).append(len(ctx.input))


def _run(epochs: int = 3, shuffle: bool = True, data: Any = None, **kw: Any) -> lw.Run:
    torch.manual_seed(0)
    x, y = lw.datasets.playground("xor", n=64, seed=0)
    net = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, 2))
    spec = lw.setup(net, loss=nn.CrossEntropyLoss(), optimizer=torch.optim.SGD)
    return spec.set_opt_hparams(lr=0.1, weight_decay=0.0).run(
        data if data is not None else (x, y),
        epochs=epochs,
        verbose=False,
        **{"dataloader_options": {"batch_size": 16, "shuffle": shuffle}, **kw},
    )


def _opt(run: lw.Run) -> torch.optim.Optimizer:
    return next(iter(run.ctx.optimizers.values()))


def test_weight_decay_in_every_group_of_every_optimizer() -> None:
    run = _run()
    run.edit("weight_decay", 1e-3)
    groups = _opt(run).param_groups
    assert [g["weight_decay"] for g in groups] == [1e-3] * len(groups)
    assert run.ctx.opt_hparams["weight_decay"] == 1e-3
    answer = commands.call(run, "edit", {"field": "weight_decay", "value": "0.01"})
    assert answer.message == "weight_decay set to 0.01"
    assert _opt(run).param_groups[0]["weight_decay"] == 0.01
    assert edit_values(run)["weight_decay"] == "0.01"
    ack = handle_command(run, {"cmd": "edit", "field": "weight_decay", "value": "0", "id": 1})
    assert (ack.ok, _opt(run).param_groups[0]["weight_decay"]) == (True, 0.0)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-0.1, "weight_decay must be a finite number >= 0 (e.g. 1e-4; 0 turns it off), got float"),
        (float("nan"), "got float nan"),
        (True, "got bool True"),
        ("1e-3", "got str '1e-3'"),
    ],
)
def test_bad_weight_decay(value: Any, message: str) -> None:
    run = _run()
    with pytest.raises(lw.ConfigError) as info:
        run.edit("weight_decay", value)
    assert message in str(info.value)
    assert _opt(run).param_groups[0]["weight_decay"] == 0.0


def test_batch_size_at_the_next_epoch_start() -> None:
    sizes = Sizes()
    run = _run(callbacks=[sizes])
    run.step("batch")
    run.edit("batch_size", 8)  # inside epoch 1: it goes on with 16
    assert edit_values(run)["batch_size"] == "16 → 8"
    run.step("epoch")
    assert batch_size_of(run.ctx.train_data) == 16
    run.resume()
    assert sizes.sizes == {1: [16] * 4, 2: [8] * 8, 3: [8] * 8}
    assert edit_values(run)["batch_size"] == "8"
    assert capture(run.ctx)["batch_size"] == 8


def test_batch_size_from_the_dashboard_and_the_table() -> None:
    run = _run()
    ack = handle_command(run, {"cmd": "edit", "field": "batch_size", "value": "32", "id": 1})
    assert (ack.ok, ack.message) == (True, "batch_size set to 32 from the next epoch on")
    run.step("batch")
    assert len(run.ctx.input) == 32
    ack = handle_command(run, {"cmd": "edit", "field": "batch_size", "value": "0", "id": 2})
    assert not ack.ok
    assert "batch_size must be a whole number >= 1 (e.g. 32), got int 0" in ack.message
    ack = handle_command(run, {"cmd": "edit", "field": "batch_size", "value": "2.5", "id": 3})
    assert (ack.ok, ack.message) == (
        False,
        "batch_size: '2.5' is not a whole number; type e.g. 10.",
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "batch_size must be a whole number >= 1 (e.g. 32), got int 0"),
        (2.0, "got float 2.0"),
        (True, "got bool True"),
        ("8", "got str '8'"),
    ],
)
def test_bad_batch_size(value: Any, message: str) -> None:
    run = _run()
    with pytest.raises(lw.ConfigError) as info:
        run.edit("batch_size", value)
    assert message in str(info.value)


def test_batch_size_refused_where_the_loader_cannot_be_remade() -> None:
    x, y = lw.datasets.playground("xor", n=64, seed=0)
    dataset = TensorDataset(x, y)
    loader = DataLoader(dataset, batch_sampler=BatchSampler(SequentialSampler(dataset), 16, False))
    run = _run(data=loader, dataloader_options=None)
    with pytest.raises(lw.ConfigError, match=r"cannot be re-made with another batch size"):
        run.edit("batch_size", 8)
    run = _run(data=DataLoader(dataset, batch_size=16, drop_last=True), dataloader_options=None)
    with pytest.raises(lw.ConfigError, match=r"fewer samples than 100, so an epoch would have"):
        run.edit("batch_size", 100)
    run.edit("batch_size", 32)  # a DataLoader is re-made as a DataLoader
    run.step("batch")
    assert isinstance(run.ctx.train_data, DataLoader)
    assert len(run.ctx.input) == 32


def test_rewind_across_a_batch_size_change_trains_as_if_it_never_happened() -> None:
    reference = _run()
    reference.resume()
    sizes = Sizes()
    run = _run(callbacks=[sizes])
    run.step("epoch")
    run.edit("batch_size", 4)
    run.step("epoch")
    assert sizes.sizes[2] == [4] * 16
    run.rewind(epoch=1)  # the snapshot of epoch 1's end: batches of 16
    assert batch_size_of(run.ctx.train_data) == 16
    sizes.sizes.clear()
    run.resume()
    assert sizes.sizes == {2: [16] * 4, 3: [16] * 4}
    assert same_weights(run.ctx.model, reference.ctx.model)


def test_step_back_replays_from_before_the_edit_as_for_lr() -> None:
    """Stepping back replays from the epoch's start (its snapshot: batches of 16, lr 0.1):
    an edit made after that snapshot is not replayed, the batch size's as the lr's."""
    run = _run()
    run.step("epoch")
    run.edit("batch_size", 8)
    run.set_lr(0.5)
    run.step("batch")
    run.step("batch")
    assert len(run.ctx.input) == 8
    run.step_back("batch")
    assert (run.ctx.epoch, run.ctx.iter, len(run.ctx.input)) == (2, 1, 16)
    assert _opt(run).param_groups[0]["lr"] == 0.1

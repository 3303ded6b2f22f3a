"""run.step_back(): exactly where a forward run stepping the same way paused before
(luzwidget.travel.stepback, landing, resume)."""

from __future__ import annotations

import copy
import random
from typing import Any

import numpy as np
import pytest
import torch
from torch.optim.lr_scheduler import StepLR

import luzwidget as lw
from luzwidget.callbacks import LRScheduler
from luzwidget.core.exceptions import ConfigError, RunStateError
from luzwidget.storage.checkpoint import get_rng_states
from luzwidget.travel.state import travel_of
from tests.training_helpers import Net, NoisyData, make_data, make_spec

OPTIONS = {"verbose": False, "dataloader_options": {"batch_size": 8}}
LOADERS = ("tensors", "dataloader")


def make_run(loader: str = "tensors", epochs: int = 3, valid: bool = True) -> lw.Run:
    """Dropout, Adam, a per-batch scheduler and shuffled batches; ``"dataloader"`` is a
    DataLoader over a Dataset whose items draw from numpy's and Python's RNGs."""
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    x, y = make_data(64)
    data = (x, y) if loader == "tensors" else NoisyData(x, y)
    return make_spec(Net).run(
        data,
        epochs=epochs,
        valid_data=make_data(16, seed=1) if valid else None,
        callbacks=[LRScheduler(StepLR, step_size=3, gamma=0.5)],
        **OPTIONS,
    )


def stepped(loader: str, batches: int, **kw: Any) -> lw.Run:
    """A fresh run stepped ``batches`` batch ends from its start."""
    run = make_run(loader, **kw)
    run.step("batch", n=batches)
    return run


def state_of(run: lw.Run) -> dict[str, Any]:
    """What must be equal: weights, optimizer state, every RNG, where the loop is, the
    records (but the timings), and the data position (the indices of the batch now)."""
    ctx = run.ctx
    opt = ctx.optimizers["opt"]
    return {
        "weights": {k: v.clone() for k, v in ctx.model.state_dict().items()},
        "opt": copy.deepcopy(opt.state_dict()),
        "rng": get_rng_states(),
        "where": (ctx.epoch, ctx.iter, run.event, str(run.state)),
        "records": copy.deepcopy({k: v for k, v in ctx.records.items() if k != "profile"}),
        "indices": ctx.indices,
        "training": [m.training for m in ctx.model.modules()],
    }


def equal(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(equal, a, b))
    if isinstance(a, float) and isinstance(b, float) and a != a:
        return b != b
    return bool(a == b)


def assert_same(run: lw.Run, ref: lw.Run) -> None:
    mine, theirs = state_of(run), state_of(ref)
    for key in mine:
        assert equal(mine[key], theirs[key]), key
    run.step("batch")  # the loader's position: the next batch is the same one
    ref.step("batch")
    assert torch.equal(run.ctx.input, ref.ctx.input)
    assert equal(state_of(run), state_of(ref))


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("at", [5, 9, 11])  # inside epoch 1, its validation, epoch 2's first
def test_step_back_is_a_fresh_run_stopped_one_batch_earlier(loader: str, at: int) -> None:
    run = stepped(loader, at)
    landing = run.step_back()
    assert run.state == "paused"
    assert run.reason.startswith("stepped back 1 batch to ")
    assert landing.replayed >= 0
    assert_same(run, stepped(loader, at - 1))


@pytest.mark.parametrize("loader", LOADERS)
def test_across_an_epoch_end_to_the_last_validation_batch(loader: str) -> None:
    run = stepped(loader, 11)  # epoch 2, its first training batch (8 + 2 per epoch)
    assert (run.ctx.epoch, run.ctx.iter, run.event) == (2, 1, lw.Event.on_train_batch_end)
    run.step_back()
    assert (run.ctx.epoch, run.ctx.iter, run.event) == (1, 2, lw.Event.on_valid_batch_end)
    assert_same(run, stepped(loader, 10))


def test_without_validation_the_batch_before_an_epoch_is_its_last_training_batch() -> None:
    run = stepped("tensors", 9, valid=False)
    assert (run.ctx.epoch, run.ctx.iter) == (2, 1)
    run.step_back()
    assert (run.ctx.epoch, run.ctx.iter, run.event) == (1, 8, lw.Event.on_train_batch_end)
    assert_same(run, stepped("tensors", 8, valid=False))


@pytest.mark.parametrize("loader", LOADERS)
def test_batch_after_batch_each_replays_a_batch_from_a_resume_point(loader: str) -> None:
    run = stepped(loader, 17)  # epoch 2, batch 7
    first = run.step_back()
    assert first.replayed <= 8  # from the end of epoch 1 (or nearer)
    for back in range(2, 6):
        landing = run.step_back()
        assert landing.base.startswith("epoch 2, batch "), landing  # a resume point
        assert landing.replayed <= 1, landing
        assert run.ctx.iter == 7 - back
    assert_same(run, stepped(loader, 12))


def test_n_batches_back_and_a_resume_that_ends_as_a_run_never_stepped_back() -> None:
    run = stepped("tensors", 14)
    run.step_back(n=6)
    assert_same(run, stepped("tensors", 8))  # (it stepped one batch on to compare)
    run.resume()
    ref = make_run()
    ref.resume()
    assert run.state == ref.state == "done"
    assert equal(state_of(run)["weights"], state_of(ref)["weights"])
    assert equal(run.ctx.records["metrics"], ref.ctx.records["metrics"])


def test_after_a_rewind() -> None:
    run = stepped("tensors", 25)
    run.rewind(epoch=1)
    run.step("batch", n=4)  # epoch 2, batch 4
    run.step_back(n=2)
    assert (run.ctx.epoch, run.ctx.iter) == (2, 2)
    assert_same(run, stepped("tensors", 12))


def test_after_a_rewind_inside_an_epoch() -> None:
    run = stepped("dataloader", 15)
    snap = run.snapshots[-1]  # the pause at epoch 2, batch 5
    run.step("batch", n=6)
    run.rewind(snap)
    run.step_back()
    assert_same(run, stepped("dataloader", 14))


@pytest.mark.parametrize(("at", "back"), [(40, 1), (40, 12), (75, 30)])
def test_step_back_by_events_is_where_stepping_by_events_paused(at: int, back: int) -> None:
    run = make_run()
    run.step("event", n=at)
    run.step_back("event", n=back)
    assert run.reason.startswith(f"stepped back {back} event")
    ref = make_run()
    ref.step("event", n=at - back)
    assert_same(run, ref)


@pytest.mark.parametrize(("batches", "back", "epochs"), [(24, 1, 2), (24, 2, 1), (20, 1, 1)])
def test_step_back_by_epochs_is_where_stepping_by_epochs_paused(
    batches: int, back: int, epochs: int
) -> None:
    run = make_run()
    run.step("batch", n=batches)  # inside epoch 3, or (20) before epoch 2 ends
    run.step_back("epoch", n=back)
    assert (run.ctx.epoch, run.event) == (epochs, lw.Event.on_epoch_end)
    ref = make_run()
    ref.step("epoch", n=epochs)
    assert_same(run, ref)


def test_right_after_a_rewind_to_an_epoch_end() -> None:
    run = stepped("tensors", 25)
    run.rewind(epoch=2)  # paused after on_epoch_end of epoch 2: no event fired since
    run.step_back()
    assert (run.ctx.epoch, run.ctx.iter, run.event) == (2, 2, lw.Event.on_valid_batch_end)
    assert_same(run, stepped("tensors", 20))


def test_a_finished_run_steps_back_into_its_last_epoch() -> None:
    run = make_run()
    run.resume()
    run.step_back()
    assert (run.ctx.epoch, run.ctx.iter, run.event) == (3, 2, lw.Event.on_valid_batch_end)
    assert_same(run, stepped("tensors", 30))


def test_resume_points_stay_within_a_quarter_of_the_stores_budget() -> None:
    run = stepped("tensors", 17)
    run.step_back()  # its own points on the way back
    cache = travel_of(run).backwards.cache  # type: ignore[union-attr]
    point = cache.point_bytes()
    assert point > 0
    run.snapshot_store.budget = 4 * 3 * point  # three points' worth
    for _ in range(6):
        run.step_back()
    assert cache.bytes <= cache.budget
    assert len([p for p in cache.points if p.own]) <= 3


def test_what_step_back_refuses() -> None:
    run = make_run()
    with pytest.raises(RunStateError, match="has not started"):
        run.step_back()
    run.step("batch")
    with pytest.raises(ConfigError, match="before the first batch"):
        run.step_back()
    with pytest.raises(ConfigError, match="what must be one of batch, event, epoch"):
        run.step_back("batches")
    with pytest.raises(ConfigError, match="n must be an int >= 1"):
        run.step_back(n=0)
    fitted = make_spec(Net).fit(make_data(32), 1, **OPTIONS)  # a blocking fit keeps none
    with pytest.raises(ConfigError, match="no snapshot before"):
        fitted.run.step_back()

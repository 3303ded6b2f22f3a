"""Snapshots, rewind and branch: exact replays and independent branches (luzwidget.travel)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch.optim.lr_scheduler import StepLR

import luzwidget as lw
from luzwidget.callbacks import EarlyStopping, LRScheduler
from luzwidget.core.exceptions import ConfigError, RunStateError
from luzwidget.travel.snapshots import Snapshot, SnapshotStore
from tests.training_helpers import Net, NoisyData, TwoOpt, make_data, make_spec, same_weights

OPTIONS = {"verbose": False, "dataloader_options": {"batch_size": 8}}


def make_run(epochs=3, callbacks=(), spec=None):
    """Dropout, a shuffled loader and data noise from numpy's and Python's RNGs: a replay
    is exact only if every RNG and the data position are restored."""
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    x, y = make_data(64)
    return (spec or make_spec(Net)).run(
        NoisyData(x, y),
        epochs=epochs,
        valid_data=make_data(16, seed=1),
        callbacks=[LRScheduler(StepLR, step_size=1, gamma=0.5), *callbacks],
        **OPTIONS,
    )


def trained(epochs=3, **kw):
    run = make_run(epochs, **kw)
    run.resume()
    assert run.state == "done"
    return run


def metrics(run):
    return run.ctx.records["metrics"]


def test_an_epoch_end_snapshot_by_default_each_on_the_cpu():
    run = trained()
    start, *snaps = run.snapshots  # the start, taken when the run is first driven
    assert (start.epoch, start.kind) == (0, "start")
    assert [(s.epoch, s.iter, s.kind) for s in snaps] == [(i, 0, "epoch_end") for i in (1, 2, 3)]
    assert all(s.bytes > 0 and s.event == "on_epoch_end" for s in snaps)
    for s in snaps:
        assert all(t.device.type == "cpu" for t in s.state["model"].values())
    # a copy: the weights of epoch 1 are not the final ones
    assert not same_weights(snaps[0].state["model"], run.ctx.model)


def test_rewind_to_epoch_1_and_resume_is_bit_identical_to_never_rewinding():
    reference = trained()
    run = trained()
    s = run.rewind(epoch=1)
    assert (s.epoch, run.state, run.ctx.epoch) == (1, "paused", 1)
    assert len(metrics(run)["train"]) == 1  # the records after it are dropped
    assert same_weights(run.ctx.model, s.state["model"])
    run.resume()
    assert run.state == "done"
    assert same_weights(run.ctx.model, reference.ctx.model)
    assert metrics(run) == metrics(reference)
    ref_opt, opt = reference.ctx.optimizers["opt"], run.ctx.optimizers["opt"]
    assert opt.param_groups[0]["lr"] == ref_opt.param_groups[0]["lr"] == 0.5**3 * 1e-2
    for p, q in zip(opt.state.values(), ref_opt.state.values(), strict=True):
        assert all(torch.equal(p[k], q[k]) for k in p)


def test_rewind_from_a_run_paused_mid_epoch_is_exact():
    reference = trained()
    run = make_run()
    run.step("epoch", n=2)
    run.step("batch", n=3)  # paused inside epoch 3: the loop is suspended there
    run.rewind(epoch=1)
    run.resume()
    assert same_weights(run.ctx.model, reference.ctx.model)
    assert metrics(run) == metrics(reference)


def test_a_rewound_snapshot_is_not_written_by_training_on():
    run = trained()
    s = run.snapshots[1]
    before = {k: v.clone() for k, v in s.state["model"].items()}
    moments = [t.clone() for t in s.state["optimizers"]["opt"]["state"][0].values()]
    run.rewind(s)
    run.resume()
    assert same_weights(s.state["model"], before)
    after = list(s.state["optimizers"]["opt"]["state"][0].values())
    assert all(torch.equal(a, b) for a, b in zip(after, moments, strict=True))
    run.rewind(s)  # twice from the same snapshot
    run.resume()
    assert same_weights(run.ctx.model, trained().ctx.model)


def test_rewind_to_the_start_replays_the_whole_fit():
    reference = trained()
    run = make_run()
    start = run.snapshot("start")
    assert start.kind == "start"
    assert start.label == "start"
    run.resume()
    run.rewind(start)
    assert run.ctx.epoch == 0
    assert run.ctx.records == {}
    run.resume()
    assert same_weights(run.ctx.model, reference.ctx.model)


def test_early_stopping_state_is_restored():
    stop = {"monitor": "valid_loss", "patience": 1, "min_delta": 10.0}
    reference = trained(epochs=6, callbacks=[EarlyStopping(**stop)])
    run = trained(epochs=6, callbacks=[EarlyStopping(**stop)])
    run.rewind(epoch=1)
    run.resume()
    assert run.ctx.epoch == reference.ctx.epoch < 6
    assert same_weights(run.ctx.model, reference.ctx.model)


def test_a_snapshot_inside_an_epoch_is_replayed_to_exactly():
    reference = trained()  # the RNGs are global: a reference trains to its end first
    run = make_run()
    run.step("epoch")
    run.step("batch", n=3)
    run.step("event", n=2)  # mid-batch: two events into batch 4
    s = run.snapshot("mid")
    assert (s.kind, s.epoch, s.iter, s.position[1]) == ("inside", 1, 4, "train")
    assert s.batches == 8 + 3
    weights = {k: v.clone() for k, v in run.ctx.model.state_dict().items()}
    run.resume()
    assert run.rewind(s) is s
    assert (run.state, run.event.value, run.ctx.epoch, run.ctx.iter) == ("paused", s.event, 2, 4)
    assert same_weights(run.ctx.model, weights)
    assert len(metrics(run)["train"]) == 1  # epochs 2 and 3 dropped
    run.resume()
    assert same_weights(run.ctx.model, reference.ctx.model)
    assert metrics(run) == metrics(reference)


def test_refusals():
    run, other = trained(), trained()
    with pytest.raises(ConfigError, match="not a snapshot of this run"):
        run.rewind(other.snapshots[0])
    with pytest.raises(ConfigError, match="no snapshot at the end of epoch 7"):
        run.rewind(epoch=7)
    with pytest.raises(ConfigError, match="unknown edit 'momentm'"):
        run.branch(epoch=1, momentm=0.9)
    with pytest.raises(ConfigError, match="lr"):
        run.branch(epoch=1, lr=-1.0)
    with pytest.raises(ConfigError, match="max_epochs"):
        run.branch(epoch=2, max_epochs=1)
    run.snapshot_store.budget = 100
    with pytest.raises(ConfigError, match="more than the store's budget of 100"):
        run.snapshot("big")
    with pytest.raises(ConfigError, match="budget"):
        SnapshotStore(budget=0)
    with pytest.raises(ConfigError, match="every"):
        SnapshotStore(every="batch")


def test_rewind_and_branch_are_refused_while_training():
    seen = []

    class Meddler(lw.Callback):
        def on_epoch_end(self, ctx):
            for act in (lambda: run.rewind(epoch=1), lambda: run.branch(epoch=1)):
                try:
                    act()
                except RunStateError as exc:
                    seen.append(str(exc))

    run = make_run(epochs=2, callbacks=[Meddler()])
    run.resume()
    assert len(seen) == 4
    assert all("pause" in m for m in seen)


def fake(epoch, label=None, size=100):
    return Snapshot(epoch, 0, label, size, "on_epoch_end", "epoch_end")


def test_eviction_keeps_the_first_the_labelled_and_the_latest():
    store = SnapshotStore(budget=450)
    for e in range(8):
        store.add(fake(e, label="mark" if e == 2 else None))
    assert [s.epoch for s in store.list()] == [0, 2, 6, 7]
    assert store.bytes <= 450
    assert store.evicted == 4
    store.add(fake(8, label="b"))
    store.add(fake(9, label="c"))
    assert [s.epoch for s in store.list()] == [0, 2, 8, 9]
    store.add(fake(10, label="d"))  # only labelled ones left to evict: the oldest goes
    assert [s.epoch for s in store.list()] == [0, 8, 9, 10]


def test_automatic_snapshots_every_n_epochs_or_off():
    run = make_run(epochs=4)
    run.snapshot_store.every = 2
    run.resume()
    assert [s.epoch for s in run.snapshots] == [0, 2, 4]  # the start, then every 2nd
    run = make_run(epochs=2)
    run.snapshot_store.every = None
    run.resume()
    assert run.snapshots == []


# -- branches ----------------------------------------------------------------------------


def tensors_of(run):
    ctx = run.ctx
    out = list(ctx.model.state_dict().values())
    for opt in ctx.optimizers.values():
        out += [t for st in opt.state.values() for t in st.values() if torch.is_tensor(t)]
    return out


def test_a_branch_without_edits_ends_as_the_parent_would():
    reference = trained()
    parent = trained()
    weights = {k: v.clone() for k, v in parent.ctx.model.state_dict().items()}
    records = repr(parent.ctx.records)
    b = parent.branch(epoch=1)
    assert b is not parent
    assert b.state == "paused"
    assert b.ctx.epoch == 1
    b.resume()
    assert b.state == "done"
    assert same_weights(b.ctx.model, reference.ctx.model)
    assert metrics(b) == metrics(reference)
    assert same_weights(parent.ctx.model, weights)  # the parent is untouched
    assert repr(parent.ctx.records) == records
    ptrs = {t.data_ptr() for t in tensors_of(parent)}
    assert not ptrs & {t.data_ptr() for t in tensors_of(b)}
    assert b.ctx.callbacks[0] is not parent.ctx.callbacks[0]


def test_a_branch_with_a_new_lr_equals_a_run_edited_at_that_epoch():
    edited = make_run(epochs=4)
    edited.step("epoch")
    edited.set_lr(0.05)
    edited.resume()
    parent = trained()
    b = parent.branch(parent.snapshots[1], lr=0.05, max_epochs=4)
    b.resume()
    assert b.ctx.epoch == 4
    assert same_weights(b.ctx.model, edited.ctx.model)
    assert metrics(b) == metrics(edited)
    assert not same_weights(b.ctx.model, parent.ctx.model)
    assert b.ctx.opt_hparams["lr"] == 0.05


def test_a_branch_edits_any_optimizer_hyperparameter():
    spec = lw.setup(Net, loss=torch.nn.CrossEntropyLoss(), optimizer=torch.optim.SGD)
    parent = trained(spec=spec.set_opt_hparams(lr=0.1))
    b = parent.branch(epoch=2, momentum=0.9, weight_decay=1e-3)
    group = b.ctx.optimizers["opt"].param_groups[0]
    assert (group["momentum"], group["weight_decay"]) == (0.9, 1e-3)
    assert parent.ctx.optimizers["opt"].param_groups[0]["momentum"] == 0
    b.resume()
    assert b.state == "done"
    assert b.ctx.epoch == 3


def test_a_snapshot_asked_while_training_in_the_background_is_taken_at_a_boundary():
    run = make_run(epochs=3)
    run.start()
    run.snapshot("asked")  # queued (None) or, had the run ended already, taken now
    assert run.wait(60) == "done"
    assert [s.label for s in run.snapshots].count("asked") == 1


def test_a_branch_sets_the_lr_of_one_optimizer_by_name():
    spec = lw.setup(TwoOpt, loss=torch.nn.CrossEntropyLoss())
    parent = trained(spec=spec)
    b = parent.branch(epoch=1, lr={"a": 0.5})
    lrs = {n: o.param_groups[0]["lr"] for n, o in b.ctx.optimizers.items()}
    assert lrs == {"a": 0.5, "b": 0.05}  # b: 0.1 halved once by the StepLR
    with pytest.raises(ConfigError, match="'c'"):
        parent.branch(epoch=1, lr={"c": 0.5})
    b.resume()
    assert b.state == "done"
    assert not same_weights(b.ctx.model, parent.ctx.model)


class OwnStep(Net):
    """A module with its own step: the branch's step must drive the branch's model."""

    def step(self, ctx):
        ctx.pred = self(ctx.input)
        loss = torch.nn.functional.cross_entropy(ctx.pred, ctx.target)
        if ctx.training:
            opt = ctx.optimizers["opt"]
            opt.zero_grad()
            loss.backward()
            opt.step()
        ctx.loss = loss.detach()


def test_a_branch_of_a_module_with_its_own_step_trains_its_own_model():
    spec = lw.setup(OwnStep, optimizer=torch.optim.SGD).set_opt_hparams(lr=0.1)
    reference = trained(spec=spec)
    parent = trained(spec=spec)
    weights = {k: v.clone() for k, v in parent.ctx.model.state_dict().items()}
    b = parent.branch(epoch=1)
    b.resume()
    assert same_weights(parent.ctx.model, weights)
    assert same_weights(b.ctx.model, reference.ctx.model)


def test_a_run_stopped_on_an_error_can_be_rewound_and_replayed():
    class FailsOnce(lw.Callback):
        failed = False

        def on_epoch_end(self, ctx):
            if ctx.epoch == 2 and not self.failed:
                FailsOnce.failed = True
                raise RuntimeError("boom")

    reference = trained()
    run = make_run(callbacks=[FailsOnce()])
    run.resume()
    assert run.state == "error"
    run.rewind(epoch=1)
    assert run.state == "paused"
    assert run.error is None
    run.resume()
    assert run.state == "done"
    assert same_weights(run.ctx.model, reference.ctx.model)


def test_a_snapshot_right_after_a_rewind_or_branch_is_at_that_epoch_end():
    run = make_run()
    run.step("epoch")
    run.step("batch", n=3)
    assert run.snapshot().kind == "inside"
    run.rewind(epoch=1)
    again = run.snapshot("again")
    assert (again.kind, again.epoch, again.iter) == ("epoch_end", 1, 0)
    b = run.branch(again)
    s = b.snapshot()
    assert (s.kind, s.epoch) == ("epoch_end", 1)
    run.step("batch")
    assert run.snapshot().kind == "inside"


# -- rewind(batches=n), pause snapshots, spilling ----------------------------------------


def test_rewind_batches_back_lands_exactly_mid_epoch_and_replays_bit_identically():
    reference = trained()
    run = make_run()
    run.step("epoch", n=2)
    run.step("batch", n=5)  # 8 batches an epoch: 21 done
    at_13 = make_run()
    at_13.step("epoch")
    at_13.step("batch", n=5)  # 13 done: where 8 batches back lands
    weights = {k: v.clone() for k, v in at_13.ctx.model.state_dict().items()}
    base = run.rewind(batches=8)
    assert (base.kind, base.epoch) == ("epoch_end", 1)  # replayed from the end of epoch 1
    assert (run.state, run.event.value, run.ctx.epoch, run.ctx.iter) == (
        "paused", "on_train_batch_end", 2, 5,
    )  # fmt: skip
    assert "8 batches back" in run.reason
    assert same_weights(run.ctx.model, weights)
    assert len(metrics(run)["train"]) == 1  # records after epoch 1 are gone
    run.resume()
    assert same_weights(run.ctx.model, reference.ctx.model)
    assert metrics(run) == metrics(reference)


def test_rewind_batches_into_the_first_epoch_replays_from_the_start():
    reference = trained()
    run = make_run()
    run.step("epoch")
    run.step("batch", n=2)  # 10 done
    assert run.rewind(batches=7).kind == "start"  # lands at batch 3 of epoch 1
    assert (run.ctx.epoch, run.ctx.iter) == (1, 3)
    assert run.ctx.records.get("metrics", {}).get("train", []) == []
    run.resume()
    assert same_weights(run.ctx.model, reference.ctx.model)
    assert run.rewind(batches=0).epoch == 3  # 0 back from the end: the last snapshot


def test_rewind_batches_refusals():
    run = make_run()
    run.step("batch", n=3)
    with pytest.raises(ConfigError, match="at most 3"):
        run.rewind(batches=4)
    with pytest.raises(ConfigError, match="int >= 0"):
        run.rewind(batches=-1)
    with pytest.raises(ConfigError, match="only one"):
        run.rewind(run.snapshots[0], batches=1)


def test_a_snapshot_before_every_pause_where_the_run_moved():
    run = make_run()
    run.step("batch", n=2)
    run.step("epoch")  # to the end of epoch 1: the epoch-end snapshot is that pause's
    run.step("batch")
    kinds = [(s.kind, s.epoch, s.iter) for s in run.snapshots]
    assert kinds == [("start", 0, 0), ("inside", 0, 2), ("epoch_end", 1, 0), ("inside", 1, 1)]
    run.rewind(epoch=1)  # no snapshot of the rewind's own pause
    assert len(run.snapshots) == 4
    run.snapshot_store.every = None
    run.step("batch")
    assert len(run.snapshots) == 4


def test_a_store_with_a_spill_dir_writes_evicted_snapshots_and_reads_them_back(tmp_path):
    reference = trained(epochs=4)
    run = make_run(epochs=4)
    run.step("epoch")  # the start and epoch 1, in memory
    one = run.snapshots[-1].bytes
    run.snapshot_store = store = SnapshotStore(3 * one, spill_dir=tmp_path / "s")
    assert [s.epoch for s in store.list()] == [0, 1]  # moved over
    run.snapshot("e1")
    run.resume()
    spilled = [s for s in run.snapshots if s.path is not None]
    assert [s.epoch for s in run.snapshots] == [0, 1, 1, 2, 3, 4]
    assert spilled
    assert all(s.state == {} for s in spilled)
    assert store.bytes <= store.budget
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == sorted(
        p.rsplit("/", 1)[-1] for p in (s.path for s in spilled)
    )
    run.rewind(spilled[0])
    run.resume()
    assert same_weights(run.ctx.model, reference.ctx.model)
    with pytest.raises(ConfigError, match="spill_dir"):
        SnapshotStore(spill_dir=3)
    with pytest.raises(ConfigError, match="must be a SnapshotStore"):
        run.snapshot_store = 3


def test_on_in_memory_tensors_rewinds_inside_an_epoch_and_batches_back_are_exact():
    """Tensors are batched by index: the epoch's order is drawn from the restored RNG states
    and the position is the batch count, as on a DataLoader."""

    def tensor_run():
        torch.manual_seed(0)
        return make_spec(Net).run(
            make_data(64), epochs=3, valid_data=make_data(16, seed=1), **OPTIONS
        )

    reference = tensor_run()
    reference.resume()
    run = tensor_run()
    assert type(run.ctx.train_data).__name__ == "IndexLoader"
    run.step("epoch")
    run.step("batch", n=3)
    s = run.snapshot("mid")
    weights = {k: v.clone() for k, v in run.ctx.model.state_dict().items()}
    run.step("epoch")
    run.step("batch", n=6)
    run.rewind(s)
    assert (run.ctx.epoch, run.ctx.iter) == (2, 3)
    assert same_weights(run.ctx.model, weights)
    run.rewind(batches=4)  # back into epoch 1, replayed from the run's start
    assert (run.ctx.epoch, run.ctx.iter) == (1, 7)
    run.resume()
    assert same_weights(run.ctx.model, reference.ctx.model)
    assert metrics(run) == metrics(reference)

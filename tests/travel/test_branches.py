"""Branches and their family: edits, independence, compare() (luzwidget.travel.branches)."""

from __future__ import annotations

import math

import pytest

import luzwidget as lw
from luzwidget.core.events import Event
from luzwidget.core.exceptions import ConfigError, RunStateError
from luzwidget.travel.branches import describe, family
from tests.training_helpers import same_weights
from tests.travel.test_snapshots import make_run, metrics, trained


def edited_at_epoch_1(lr, epochs=3):
    """A run from scratch that trains one epoch, then on with ``lr``: what a branch at the
    end of epoch 1 with ``lr`` must equal."""
    run = make_run(epochs)
    run.step("epoch")
    run.set_lr(lr)
    run.resume()
    return run


def test_parent_and_branch_trained_in_turns_equal_runs_from_scratch():
    plain, edited = trained(), edited_at_epoch_1(0.05)
    parent = make_run()
    parent.step("epoch")
    b = parent.branch(lr=0.05)
    for _ in range(2):  # in turns: one shares nothing mutable with the other
        b.step("epoch")
        parent.step("epoch")
    parent.resume()
    b.resume()
    assert same_weights(parent.ctx.model, plain.ctx.model)
    assert metrics(parent) == metrics(plain)
    assert same_weights(b.ctx.model, edited.ctx.model)
    assert metrics(b) == metrics(edited)


def test_a_branch_from_inside_an_epoch_starts_there():
    parent = make_run()
    parent.step("epoch")
    parent.step("batch", n=3)
    s = parent.snapshots[-1]  # the pause's
    assert s.kind == "inside"
    parent.resume()
    b = parent.branch(s)
    assert (b.state, b.ctx.epoch, b.ctx.iter, b.event.value) == ("paused", 2, 3, s.event)
    b.resume()
    assert same_weights(b.ctx.model, parent.ctx.model)


def test_a_branch_with_breakpoints_pauses_there_and_the_parent_keeps_its_own():
    parent = trained()
    parent.breakpoints.add("on_valid_begin")
    b = parent.branch(epoch=1, breakpoints=["on_epoch_end"])
    assert b.breakpoints.events == {Event.on_epoch_end}
    assert parent.breakpoints.events == {Event.on_valid_begin}
    b.resume()
    assert (b.state, b.event, b.ctx.epoch) == ("paused", Event.on_epoch_end, 2)
    with pytest.raises(ConfigError, match="breakpoints must be event names"):
        parent.branch(epoch=1, breakpoints=["on_nothing"])


def test_compare_lists_the_family_with_what_differs_and_final_metrics():
    parent = trained()
    b1 = parent.branch(epoch=1, lr=0.05)
    b1.resume()
    b11 = b1.branch(epoch=2, max_epochs=4)
    b11.resume()
    table = b1.compare()
    assert list(table["run"]) == ["main", "branch 1", "branch 1.1"]
    assert list(table["this"]) == [False, True, False]
    assert list(table["branched"]) == ["", "lr 0.05 from epoch 1", "max_epochs 4 from epoch 2"]
    assert list(table["epoch"]) == [3, 3, 4]
    assert list(table["state"]) == ["done"] * 3
    final = metrics(b11)["valid"][-1]["loss"]
    assert math.isclose(table["valid_loss"].iloc[2], final)
    assert {"train_loss", "valid_loss"} <= set(table.columns)
    assert [name for name, _ in family(parent)] == list(table["run"])
    assert describe(parent) == ""


def test_branching_a_training_run_needs_a_snapshot_and_is_copied_at_a_boundary():
    run = make_run(epochs=30)
    run.step("epoch")
    s = run.snapshots[-1]
    run.start()
    try:
        if run.state == "running":
            with pytest.raises(RunStateError, match=r"pause first.*branch from a snapshot"):
                run.branch(lr=0.05)
        b = run.branch(s, lr=0.05)  # copied by the training thread at its next boundary
    finally:
        run.pause()
        run.wait(60)
    assert (b.state, b.ctx.epoch) == ("paused", 1)
    assert b.ctx.optimizers["opt"].param_groups[0]["lr"] == 0.05
    assert b.ctx.model is not run.ctx.model


def test_an_unknown_edit_names_the_argument_and_the_known_ones():
    parent = trained()
    with pytest.raises(ConfigError, match=r"unknown edit 'lrate'.*lr, max_epochs, breakpoints"):
        parent.branch(epoch=1, lrate=0.1)
    assert isinstance(parent.branch(epoch=1, weight_decay=0.01), lw.Run)

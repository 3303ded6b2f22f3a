"""The seam: features installed by the composition root, reached only through run.features."""

from __future__ import annotations

import pytest
import torch

import luzwidget as lw
from luzwidget.core.callback import is_run_bound
from luzwidget.core.context import Context
from luzwidget.core.exceptions import ConfigError, RunStateError
from luzwidget.insight.feature import Insight
from luzwidget.travel.feature import TimeTravel
from luzwidget.travel.snapshots import TakeSnapshots
from tests.helpers import MLP, E, make_data, make_spec, snapshot, state_equal


def _run(**kw: object) -> lw.Run:
    torch.manual_seed(0)
    return make_spec(MLP, dropout=0.2).run(make_data(160), epochs=3, verbose=False, **kw)


def test_a_run_of_a_fit_has_time_travel_and_insight_and_nothing_else() -> None:
    run = _run()
    assert run.features.installed() == ["travel", "insight"]
    assert isinstance(run.features.travel, TimeTravel)
    assert isinstance(run.features.insight, Insight)
    assert run.breakpoints.watch is run.features.insight.watch
    assert [type(cb) for cb in run.ctx.callbacks].count(TakeSnapshots) == 1


def test_a_blocking_fit_keeps_no_automatic_snapshots_but_can_take_one() -> None:
    torch.manual_seed(0)
    fitted = make_spec(MLP).fit(make_data(64), epochs=2, verbose=False)
    run = fitted.run
    assert run.features.installed() == ["travel", "insight"]
    assert not any(isinstance(cb, TakeSnapshots) for cb in run.ctx.callbacks)
    assert run.snapshots == []
    snap = run.snapshot("by hand")
    assert snap is not None
    assert run.snapshots == [snap]


def test_a_run_built_by_hand_has_no_features_and_says_what_gives_them() -> None:
    run = lw.Run(Context(), lambda ctx: iter(()))  # type: ignore[arg-type, return-value]
    assert run.features.installed() == []
    for call in (run.snapshot, run.rewind, run.compare, run.layers, run.activations):
        with pytest.raises(ConfigError, match=r"runs made by setup\(\.\.\.\)\.run\(\), fit\(\)"):
            call()
    with pytest.raises(ConfigError, match=r"nonfinite needs a run's breakpoints"):
        run.breakpoints.nonfinite = True


def test_detaching_time_travel_takes_its_callback_and_listeners_out() -> None:
    run = _run()
    travel = run.features.travel
    assert travel is not None
    listeners = len(run._driver.listeners)
    travel.detach()
    assert run.features.travel is None
    assert not any(isinstance(cb, TakeSnapshots) for cb in run.ctx.callbacks)
    assert len(run._driver.listeners) == listeners - 3  # own_rng, before_pause, backwards
    run.step("epoch")  # trains on without it
    with pytest.raises(ConfigError, match="keeps no snapshots"):
        run.snapshot()


def test_detaching_insight_removes_the_nonfinite_hooks_at_once_on_a_paused_run() -> None:
    run = _run()
    run.breakpoints.nonfinite = True
    run.step("batch")
    insight = run.features.insight
    assert isinstance(insight, Insight)
    assert insight.watch.handles  # a forward hook per module while on
    insight.detach()
    assert run.features.insight is None
    assert insight.watch.handles == []
    assert all(not m._forward_hooks for m in run.ctx.model.modules())
    assert not run.breakpoints.nonfinite
    run.resume()
    assert run.state == "done"


def test_a_branch_is_equipped_as_its_parent_with_features_of_its_own() -> None:
    run = _run()
    run.step("epoch")
    branch = run.branch(lr=0.01)
    assert branch.features.installed() == ["travel", "insight"]
    assert branch.features.travel is not run.features.travel
    assert branch.features.insight is not run.features.insight
    assert not any(cb in run.ctx.callbacks for cb in branch.ctx.callbacks if is_run_bound(cb))
    assert branch.snapshot_store.budget == run.snapshot_store.budget


def test_skip_at_a_pause_inside_a_batch_drops_it_as_a_skip_after_an_error_does() -> None:
    """run.skip() at a mid-batch pause ends bit-identical to run.skip() of that batch's error."""

    def fail_once(ctx: lw.Context) -> None:
        if (ctx.epoch, ctx.iter) == (1, 3) and not seen:
            seen.append(1)
            raise ValueError("planted")

    seen: list[int] = []
    failing = _run(callbacks=[_Hook(E.on_train_batch_after_loss, fail_once)])
    failing.resume()
    assert failing.state == "error"
    failing.skip(background=False)
    assert failing.state == "done"

    paused = _run()
    paused.breakpoints.add(lambda ctx: (ctx.epoch, ctx.iter) == (1, 3))
    paused.resume()
    assert (paused.event, paused.ctx.iter) == (E.on_train_batch_after_loss, 3)
    paused.breakpoints.clear()
    paused.skip(background=False)
    assert paused.state == "done"
    assert state_equal(snapshot(paused.ctx.model), snapshot(failing.ctx.model))
    assert paused.ctx.records["metrics"] == failing.ctx.records["metrics"]


def test_skip_refuses_where_there_is_no_batch_to_drop() -> None:
    run = _run()
    run.step("epoch")
    with pytest.raises(RunStateError, match=r"the run is paused after on_epoch_end"):
        run.skip()


def test_a_finished_run_goes_on_when_max_epochs_was_raised() -> None:
    run = _run()
    run.resume()
    assert (run.state, run.ctx.epoch) == ("done", 3)
    with pytest.raises(RunStateError, match="the run is done"):
        run.resume()
    with pytest.raises(ConfigError, match=r"give epochs=n, or raise max_epochs first"):
        run.extend()
    run.edit("max_epochs", 5)
    run.resume()
    assert (run.state, run.ctx.epoch) == ("done", 5)
    run.edit("max_epochs", 6)
    run.extend()
    assert run.state == "ready"
    run.step("epoch")
    assert run.ctx.epoch == 6


class _Hook(lw.Callback):
    def __init__(self, event: lw.Event, fn: object) -> None:
        setattr(self, event.value, fn)

"""The engine: the context holds data only; dispatch, flags and trait storage live here."""

from __future__ import annotations

import pathlib

import pytest
import torch

import luzwidget as lw
from luzwidget import Callback
from luzwidget.core.engine import Engine, engine_of
from luzwidget.core.flags import LoopFlags
from luzwidget.core.loop import fire
from tests.helpers import E, make_data, make_spec

PACKAGE = pathlib.Path(lw.__file__).parent


class Watch(Callback):
    def on_train_batch_after_loss(self, ctx: lw.Context) -> None:
        pass

    def on_epoch_end(self, ctx: lw.Context) -> None:
        pass


SHOWN = """\
on_fit_begin                           Profile, LossLog, Sentinel
  on_epoch_begin                       Profile, Progress
    on_train_begin                     Profile, TrainValid, Metrics, Progress, Sentinel, EpochStart
      on_train_batch_begin             -
        on_train_batch_after_pred      Sentinel
        on_train_batch_after_loss      Watch
        on_train_batch_before_backward Sentinel
        on_train_batch_before_step     -
        on_train_batch_after_step      -
      on_train_batch_end               Metrics, Progress, LossLog
    on_train_end                       Profile, Metrics, Progress
    on_valid_begin                     Profile, TrainValid, Metrics, Progress
      on_valid_batch_begin             -
        on_valid_batch_after_pred      Sentinel
        on_valid_batch_after_loss      -
      on_valid_batch_end               Metrics, Progress
    on_valid_end                       Profile, Metrics, Progress
  on_epoch_end                         Profile, Watch, TakeSnapshots
on_early_stopping                      -
on_interrupt                           Interrupt
on_fit_end                             Profile, Progress
on_predict_begin                       Progress
  on_predict_batch_begin               -
  on_predict_batch_end                 Progress
on_predict_end                         Progress
"""


def test_show_loop_prints_who_runs_at_each_event_in_loop_order(
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = make_spec().run(make_data(32), epochs=1, callbacks=[Watch()], verbose=False)
    run.show_loop()
    assert capsys.readouterr().out == SHOWN


def test_show_loop_follows_callbacks_added_to_the_run(capsys: pytest.CaptureFixture[str]) -> None:
    run = make_spec().run(make_data(32), epochs=1, verbose=False)
    run.add_callback(Watch())
    run.show_loop()
    lines = capsys.readouterr().out.splitlines()
    assert lines[5] == "        on_train_batch_after_loss      Watch"


def test_the_context_holds_no_dispatch_and_no_driver_flags() -> None:
    ctx = make_spec().run(make_data(32), epochs=1, verbose=False).ctx
    for name in ("_table", "_listen", "_guard", "_pause_hook", "_dispatch", "_putter"):
        assert not hasattr(ctx, name), name
    engine = engine_of(ctx)
    assert engine_of(ctx) is engine
    assert engine.ctx is ctx
    assert isinstance(engine.flags, LoopFlags)
    with pytest.raises(AttributeError):
        engine.flags.listen = True  # type: ignore[attr-defined]  # slots: no typo'd flag


def test_a_bare_context_gets_its_engine_on_first_use() -> None:
    calls = []

    class Note(Callback):
        def on_epoch_end(self, ctx: lw.Context) -> None:
            calls.append(ctx.epoch)

    ctx = lw.Context(callbacks=[Note()])
    ctx.call_callbacks("epoch_end")
    engine = engine_of(ctx)
    ctx.callbacks = []  # the engine's table follows the context's callbacks
    ctx.call_callbacks("epoch_end")
    assert calls == [0]
    assert engine.table[E.on_epoch_end] == ()


def test_an_event_nobody_listens_to_costs_nothing_but_a_lookup() -> None:
    engine = Engine(lw.Context(callbacks=[Watch()]))
    engine.flags.listening = False
    for event in (E.on_train_batch_begin, E.on_valid_batch_begin, E.on_valid_batch_after_pred):
        assert fire(engine, event) == ()  # not even a generator is made
    assert list(fire(engine, E.on_epoch_end)) == []  # Watch runs; nothing yielded
    engine.flags.listening = True
    assert list(fire(engine, E.on_valid_batch_begin)) == [E.on_valid_batch_begin]


def test_only_the_engine_reads_trait_storage() -> None:
    readers = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "_trait_values" in path.read_text()
    )
    # the storage and its types
    assert readers == ["core/context.py", "core/engine.py", "core/traits.py"]


def test_only_the_loops_fire_events() -> None:
    firing = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "call_callbacks(" in path.read_text() or ".dispatch(" in path.read_text()
    )
    assert firing == [
        "core/context.py",
        "core/engine.py",
        "core/firing.py",
    ]  # defined, served, used


# -- control flow where it means nothing (issue 9.10) -----------------------------------------


def _raising(event: str, exc: BaseException) -> Callback:
    def method(self: Callback, ctx: lw.Context) -> None:
        if self.raising:  # type: ignore[attr-defined]
            raise exc

    return type(f"Raises_{event}", (Callback,), {event: method, "raising": True})()


@pytest.mark.parametrize(
    ("event", "exc", "why"),
    [
        ("on_fit_end", lw.StopFit("late"), "the fit has already ended"),
        ("on_fit_begin", lw.StopEpoch(), "no epoch has started yet"),
        ("on_epoch_end", lw.StopEpoch(), "the epoch has already ended"),
        ("on_early_stopping", lw.StopFit(), "the fit has already ended"),
    ],
)
def test_misplaced_control_flow_names_callback_and_event_and_can_be_retried(
    event: str, exc: BaseException, why: str
) -> None:
    x, y = make_data(32)
    bad = _raising(event, exc)
    stop = _raising("on_epoch_end", lw.EarlyStop()) if event == "on_early_stopping" else None
    run = make_spec().run((x, y), epochs=1, verbose=False, callbacks=[bad, *([stop] * bool(stop))])
    run.resume()
    assert run.state == "error"
    msg = str(run.error)
    assert f"Callback {type(bad).__name__}.{event} raised {type(exc).__name__}" in msg
    assert why in msg
    assert "has no meaning there" in msg
    assert "allowed" in msg
    assert run.error.__cause__ is exc
    bad.raising = False  # type: ignore[attr-defined]
    run.retry()
    assert run.state == "done"
    assert run.ctx.epoch == 1


def test_misplaced_control_flow_can_be_skipped() -> None:
    x, y = make_data(32)
    bad = _raising("on_fit_begin", lw.StopFit())  # allowed: ends the fit before any epoch
    run = make_spec().run((x, y), epochs=2, verbose=False, callbacks=[bad])
    run.resume()
    assert run.state == "done"
    assert run.ctx.epoch == 0
    bad = _raising("on_fit_begin", lw.StopEpoch())
    run = make_spec().run((x, y), epochs=2, verbose=False, callbacks=[bad])
    run.resume()
    assert run.state == "error"
    run.skip()
    assert run.state == "done"
    assert run.ctx.epoch == 2


def test_control_flow_in_predict_is_a_clear_error() -> None:
    x, y = make_data(32)
    fitted = make_spec().fit((x, y), epochs=1, verbose=False)
    bad = _raising("on_predict_batch_end", lw.StopFit())
    with pytest.raises(lw.CallbackError, match=r"this loop \(evaluate or predict\) does not"):
        fitted.predict(x, callbacks=[bad])


def test_a_loss_grad_changed_under_no_grad_says_to_enable_grad() -> None:
    class Zero(Callback):
        fixed = False

        def on_train_batch_before_backward(self, ctx: lw.Context) -> None:
            if self.fixed:
                with torch.enable_grad():
                    ctx.loss_grad = ctx.loss_grad * 0
            else:
                ctx.loss_grad = ctx.loss_grad * 0

    x, y = make_data(32)
    zero = Zero()
    run = make_spec().run((x, y), epochs=1, verbose=False, callbacks=[zero])
    run.breakpoints.sentinel.disable("zero_grads")  # the loss times 0: planted, on purpose
    run.resume()  # the sentinel sees the loss without grad_fn first, before backward
    assert run.state == "paused"
    assert run.reason.startswith("sentinel detached_loss")
    run.resume()
    assert run.state == "error"
    msg = str(run.error)
    assert "does not require grad" in msg
    assert "Callbacks run under torch.no_grad()" in msg
    assert "with torch.enable_grad():" in msg
    zero.fixed = True
    run.retry()
    assert run.state == "done"

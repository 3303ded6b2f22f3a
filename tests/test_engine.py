"""The engine: the context holds data only; dispatch, flags and trait storage live here."""

from __future__ import annotations

import pathlib

import pytest

import luzwidget as lw
from luzwidget import Callback
from luzwidget.engine import Engine, Fault, LoopFlags, engine_of
from luzwidget.loop import fire
from tests.helpers import E, make_data, make_spec

PACKAGE = pathlib.Path(lw.__file__).parent


class Watch(Callback):
    def on_train_batch_after_loss(self, ctx: lw.Context) -> None:
        pass

    def on_epoch_end(self, ctx: lw.Context) -> None:
        pass


SHOWN = """\
on_fit_begin                           Profile
  on_epoch_begin                       Profile, Progress
    on_train_begin                     Profile, TrainValid, Metrics, Progress
      on_train_batch_begin             -
        on_train_batch_after_pred      -
        on_train_batch_after_loss      Watch
        on_train_batch_before_backward -
        on_train_batch_before_step     -
        on_train_batch_after_step      -
      on_train_batch_end               Metrics, Progress
    on_train_end                       Profile, Metrics, Progress
    on_valid_begin                     Profile, TrainValid, Metrics, Progress
      on_valid_batch_begin             -
        on_valid_batch_after_pred      -
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


def test_fault_still_imports_from_the_context_module() -> None:
    from luzwidget.context import Fault as Old

    assert Old is Fault


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
    assert readers == ["context.py", "engine.py", "traits.py"]  # storage and its types


def test_only_loop_py_fires_events() -> None:
    firing = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "call_callbacks(" in path.read_text() or ".dispatch(" in path.read_text()
    )
    assert firing == ["context.py", "engine.py", "loop.py"]  # defined, served, used

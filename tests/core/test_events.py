"""Event: luz's names, parsing, the docstring loop, and that every event reaches a callback."""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest
import torch

import luzwidget as lw
from luzwidget import Event
from luzwidget.core.callback import Callback
from luzwidget.core.dispatch import build_dispatch_table
from tests.helpers import E, make_data, make_spec

LUZ_EVENTS = [
    "on_fit_begin",
    "on_epoch_begin",
    "on_train_begin",
    "on_train_batch_begin",
    "on_train_batch_after_pred",
    "on_train_batch_after_loss",
    "on_train_batch_before_backward",
    "on_train_batch_before_step",
    "on_train_batch_after_step",
    "on_train_batch_end",
    "on_train_end",
    "on_valid_begin",
    "on_valid_batch_begin",
    "on_valid_batch_after_pred",
    "on_valid_batch_after_loss",
    "on_valid_batch_end",
    "on_valid_end",
    "on_epoch_end",
    "on_fit_end",
    "on_early_stopping",
    "on_interrupt",
    "on_predict_begin",
    "on_predict_batch_begin",
    "on_predict_batch_end",
    "on_predict_end",
]


def test_event_names_are_luz_names_in_loop_order() -> None:
    assert [e.value for e in Event] == LUZ_EVENTS
    assert [e.name for e in Event] == LUZ_EVENTS


def test_event_is_a_str_enum() -> None:
    assert Event.on_fit_begin == "on_fit_begin"
    assert isinstance(Event.on_epoch_end, str)
    assert f"{Event.on_epoch_end}" == "on_epoch_end"


@pytest.mark.parametrize("event", list(Event))
def test_parse_accepts_the_event_its_name_and_the_name_without_on(event: Event) -> None:
    assert Event.parse(event) is event
    assert Event.parse(event.value) is event
    assert Event.parse(event.value.removeprefix("on_")) is event


@pytest.mark.parametrize("bad", ["epoch_ends", "on_epoch_ends", "", "ON_FIT_BEGIN", 3, None])
def test_parse_refuses_unknown_names_listing_the_valid_ones(bad: Any) -> None:
    with pytest.raises(
        ValueError,
        match=r"breakpoint=.* is not an event; expected one of: "
        r"on_fit_begin, on_epoch_begin.*on_predict_end\.",
    ):
        Event.parse(bad, argument="breakpoint")


@pytest.mark.parametrize("event", list(Event))
def test_docstring_draws_every_event(event: Event) -> None:
    assert event.value in (Event.__doc__ or "")


def test_docstring_draws_the_fit_events_in_loop_order() -> None:
    doc = Event.__doc__ or ""
    fit_order = LUZ_EVENTS[: LUZ_EVENTS.index("on_fit_end") + 1]
    positions = [doc.index(name) for name in fit_order]
    assert positions == sorted(positions)


@pytest.mark.parametrize("event", list(Event))
def test_callback_base_has_a_noop_for_every_event_that_is_never_dispatched(event: Event) -> None:
    method = getattr(Callback, event.value)
    assert method(Callback(), None) is None
    table = build_dispatch_table([Callback()])
    assert table[event] == ()


def _only(event: Event) -> Callback:
    """A callback overriding only ``event``; it records (epoch, iter) each time it is called."""

    def method(self: Any, ctx: lw.Context) -> None:
        self.seen.append((ctx.epoch, ctx.iter))

    cls = type(f"Only_{event.value}", (Callback,), {event.value: method})
    cb = cls()
    cb.seen = []  # type: ignore[attr-defined]
    return cb


def _trigger(event: Event, cb: Callback) -> None:
    """Run whatever makes ``event`` fire, with ``cb`` among the callbacks."""
    x, y = make_data(32)
    spec = make_spec()
    opts = {"batch_size": 16}
    if event.value.startswith("on_predict"):
        fitted = spec.fit((x, y), epochs=1, verbose=False, dataloader_options=opts)
        fitted.predict(x, callbacks=[cb], dataloader_options=opts)
    elif event is E.on_early_stopping:

        class Stop(Callback):
            def on_epoch_end(self, ctx: lw.Context) -> None:
                raise lw.EarlyStop

        spec.fit((x, y), epochs=3, verbose=False, callbacks=[cb, Stop()], dataloader_options=opts)
    elif event is E.on_interrupt:

        class CtrlC(Callback):
            def on_train_batch_end(self, ctx: lw.Context) -> None:
                os.kill(os.getpid(), signal.SIGINT)

        fitted = spec.fit(
            (x, y), epochs=2, verbose=False, callbacks=[cb, CtrlC()], dataloader_options=opts
        )
        assert fitted.run.state == "paused"
    else:
        spec.fit(
            (x, y),
            epochs=2,
            valid_data=(x, y),
            verbose=False,
            callbacks=[cb],
            dataloader_options=opts,
        )


@pytest.mark.parametrize("event", list(Event))
def test_a_callback_on_each_event_is_called_when_it_fires(event: Event) -> None:
    cb = _only(event)
    _trigger(event, cb)
    seen = cb.seen  # type: ignore[attr-defined]
    expected = {
        E.on_fit_begin: 1,
        E.on_fit_end: 1,
        E.on_epoch_begin: 2,
        E.on_epoch_end: 2,
        E.on_train_begin: 2,
        E.on_train_end: 2,
        E.on_valid_begin: 2,
        E.on_valid_end: 2,
        E.on_early_stopping: 1,
        E.on_interrupt: 1,
        E.on_predict_begin: 1,
        E.on_predict_end: 1,
        E.on_predict_batch_begin: 2,
        E.on_predict_batch_end: 2,
    }.get(event, 4)  # batch events: 2 epochs x 2 batches
    assert len(seen) == expected


def test_callback_methods_are_called_with_the_context() -> None:
    got: list[Any] = []

    class Keep(Callback):
        def on_fit_begin(self, ctx: lw.Context) -> None:
            got.append(ctx)

    x, y = make_data(32)
    cb = Keep()
    fitted = make_spec().fit((x, y), epochs=1, verbose=False, callbacks=[cb])
    assert got == [fitted.ctx]
    assert cb.ctx is fitted.ctx
    assert isinstance(got[0], lw.Context)
    assert torch.is_grad_enabled()


def test_parse_refuses_with_a_config_error_and_a_hint() -> None:
    with pytest.raises(lw.ConfigError, match=r"what='batches' is not an event.* Or use 'batch'"):
        Event.parse("batches", argument="what", hint="Or use 'batch'.")


def test_the_event_groups_are_defined_once_on_event() -> None:
    def names(prop: str) -> set[str]:
        return {e.value.removeprefix("on_") for e in Event if getattr(e, prop)}

    assert names("is_after_loss") == {"train_batch_after_loss", "valid_batch_after_loss"}
    assert names("is_after_pred") == {"train_batch_after_pred", "valid_batch_after_pred"}
    assert names("is_batch_end") == {"train_batch_end", "valid_batch_end", "predict_batch_end"}
    assert names("is_batch_begin") == {
        "train_batch_begin",
        "valid_batch_begin",
        "predict_batch_begin",
    }
    assert names("mid_batch") == {
        "train_batch_begin",
        "train_batch_after_pred",
        "train_batch_after_loss",
        "train_batch_before_backward",
        "train_batch_before_step",
        "valid_batch_begin",
        "valid_batch_after_pred",
        "valid_batch_after_loss",
    }
    assert names("is_predict") == {
        "predict_begin",
        "predict_batch_begin",
        "predict_batch_end",
        "predict_end",
    }
    assert names("in_epoch") == {
        "epoch_begin",
        "epoch_end",
        *(n for n in names("in_batch") if not n.startswith("predict")),
        "train_begin",
        "train_end",
        "valid_begin",
        "valid_end",
    }
    assert names("in_train_batch") == {n for n in names("in_batch") if n.startswith("train")}
    assert [e.depth for e in (Event.on_fit_begin, Event.on_epoch_end, Event.on_valid_begin)] == [
        0,
        1,
        2,
    ]
    assert Event.on_train_batch_end.depth == 3
    assert Event.on_train_batch_after_step.depth == 4
    assert Event.on_predict_batch_end.depth == 1

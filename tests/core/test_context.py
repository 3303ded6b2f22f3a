"""Context: every luz field is an observable trait; records notify; validation refuses."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from traitlets import TraitError

import luzwidget as lw
from luzwidget import Context, Event
from luzwidget.core.callback import Callback
from luzwidget.core.context import Live, finite_positive

# The luz ctx fields (LUZ_REFERENCE.md), plus the ones luz also has.
LUZ_FIELDS = [
    "verbose",
    "accelerator",
    "model",
    "optimizers",
    "data",
    "train_data",
    "valid_data",
    "min_epochs",
    "max_epochs",
    "epoch",
    "iter",
    "training",
    "callbacks",
    "step",
    "batch",
    "input",
    "target",
    "pred",
    "loss_fn",
    "loss",
    "opt",
    "opt_nm",
    "metrics",
    "records",
    "handlers",
    "epoch_handlers",
    "loss_grad",
    "buffers",
    "device",
    "hparams",
    "opt_hparams",
    "step_opt",
]
LUZ_METHODS = ["call_callbacks", "log", "log_metric", "get_log", "get_metrics", "get_metric"]


def _func(*args: Any) -> None:
    return None


# A new value for each field: observers must fire when it is assigned.
NEW_VALUES: dict[str, Any] = {
    "verbose": True,
    "accelerator": lw.Accelerator(cpu=True),
    "model": torch.nn.Linear(2, 1),
    "optimizers": {"opt": "anything"},
    "data": [1, 2],
    "train_data": [1, 2],
    "valid_data": [1, 2],
    "min_epochs": 3,
    "max_epochs": 20,
    "epoch": 4,
    "iter": 7,
    "training": True,
    "callbacks": [Callback()],
    "step": _func,
    "batch": (torch.zeros(2), torch.ones(2)),
    "input": torch.zeros(2),
    "target": torch.ones(2),
    "pred": torch.zeros(2, 1),
    "loss_fn": _func,
    "loss": torch.tensor(1.5),
    "opt": object(),
    "opt_nm": "gen",
    "metrics": {"train": []},
    "records": {"x": {}},
    "handlers": {ValueError: _func},
    "epoch_handlers": {ValueError: _func},
    "loss_grad": torch.tensor(2.0),
    "buffers": {"mine": 1},
    "device": torch.device("cpu"),
    "hparams": {"hidden": 3},
    "opt_hparams": {"lr": 0.1},
    "step_opt": _func,
}


@pytest.mark.parametrize("field", LUZ_FIELDS)
def test_every_luz_field_is_a_trait(field: str) -> None:
    assert field in Context.class_trait_names()
    ctx = Context()
    getattr(ctx, field)  # readable with its default


@pytest.mark.parametrize("name", LUZ_METHODS)
def test_luz_context_methods_exist(name: str) -> None:
    assert callable(getattr(Context(), name))


@pytest.mark.parametrize("field", LUZ_FIELDS)
def test_observe_fires_for_every_field(field: str) -> None:
    ctx = Context()
    changes: list[Any] = []
    ctx.observe(changes.append, field)
    value = NEW_VALUES[field]
    setattr(ctx, field, value)
    assert len(changes) == 1
    assert changes[0].name == field
    assert changes[0].owner is ctx


def test_new_values_table_covers_every_field() -> None:
    assert set(NEW_VALUES) == set(LUZ_FIELDS)


@pytest.mark.parametrize(
    "field", ["batch", "input", "target", "pred", "loss", "loss_grad", "iter", "opt", "opt_nm"]
)
def test_per_batch_fields_are_live_and_compared_by_identity(field: str) -> None:
    assert isinstance(Context.class_traits()[field], Live)
    ctx = Context()
    changes: list[Any] = []
    ctx.observe(changes.append, field)
    value = torch.zeros(3)
    setattr(ctx, field, value)
    setattr(ctx, field, value)  # the same object: no notification
    setattr(ctx, field, torch.zeros(3))  # equal but another object: notification
    assert [c.new is not None for c in changes] == [True, True]
    assert changes[0].old == Context.class_traits()[field].default_value  # None; iter: 0
    assert changes[1].old is value


def test_live_field_without_observer_is_just_stored() -> None:
    ctx = Context()
    t = torch.ones(4096, 64)
    ctx.pred = t
    assert ctx.pred is t


def test_observe_all_sees_live_fields() -> None:
    ctx = Context()
    names: list[str] = []
    ctx.observe(lambda c: names.append(c.name))
    ctx.loss = torch.tensor(1.0)
    ctx.epoch = 2
    assert names == ["loss", "epoch"]


def test_opt_name_is_an_alias_of_opt_nm_and_notifies_it() -> None:
    ctx = Context()
    changes: list[Any] = []
    ctx.observe(changes.append, "opt_nm")
    ctx.opt_name = "disc"
    assert ctx.opt_nm == "disc"
    assert ctx.opt_name == "disc"
    assert [c.new for c in changes] == ["disc"]


# -- records ----------------------------------------------------------------------------------


def test_log_notifies_records_observers_with_what_was_added() -> None:
    ctx = Context()
    changes: list[Any] = []
    ctx.observe(changes.append, "records")
    ctx.log("metrics", "train", {"loss": 1.0}, index=1)
    ctx.log("metrics", "train", {"acc": 0.5}, index=1)
    ctx.log("profile", "epoch", 0.25)
    assert [(c.added.what, c.added.set, c.added.index, c.added.value) for c in changes] == [
        ("metrics", "train", 1, {"loss": 1.0}),
        ("metrics", "train", 1, {"acc": 0.5}),
        ("profile", "epoch", 1, 0.25),
    ]
    assert all(c.name == "records" and c.new is ctx.records for c in changes)
    assert ctx.records == {
        "metrics": {"train": [{"loss": 1.0, "acc": 0.5}]},
        "profile": {"epoch": [0.25]},
    }


def test_log_index_fills_gaps_and_replaces_without_append() -> None:
    ctx = Context()
    ctx.log("metrics", "valid", {"loss": 2.0}, index=3)
    assert ctx.records["metrics"]["valid"] == [{}, {}, {"loss": 2.0}]
    ctx.log("metrics", "valid", {"acc": 1.0}, index=3, append=False)
    assert ctx.records["metrics"]["valid"][2] == {"acc": 1.0}
    ctx.log("lr", "opt", 0.1)
    ctx.log("lr", "opt", 0.2)
    assert ctx.get_log("lr", "opt") == [0.1, 0.2]
    assert ctx.get_log("lr", "opt", 2) == 0.2
    with pytest.raises(ValueError, match="index must be >= 1"):
        ctx.log("lr", "opt", 0.3, index=0)


def test_log_metric_uses_training_and_epoch() -> None:
    ctx = Context()
    ctx.epoch = 2
    ctx.training = True
    ctx.log_metric("loss", 1.0)
    ctx.training = False
    ctx.log_metric("loss", 3.0)
    assert ctx.records["metrics"]["train"] == [{}, {"loss": 1.0}]
    assert ctx.get_metric("loss", "valid") == 3.0
    assert ctx.get_metric("loss", "train", epoch=2) == 1.0
    assert ctx.get_metrics("train", 1) == {}
    assert ctx.get_metrics("test") == {}


def test_get_metric_errors_say_what_was_logged() -> None:
    ctx = Context()
    ctx.epoch = 1
    ctx.log_metric("loss", 1.0)
    with pytest.raises(KeyError, match=r"no valid metric 'acc'.*logged: \['loss'\]"):
        ctx.get_metric("acc", "valid")
    with pytest.raises(KeyError, match=r"no valid metrics for epoch 5; logged: 1\.\.1"):
        ctx.get_metrics("valid", 5)


# -- unknown attributes ---------------------------------------------------------------------


def test_unknown_attribute_is_refused_pointing_at_buffers() -> None:
    ctx = Context()
    with pytest.raises(
        AttributeError, match=r"no field 'my_counter'.*ctx\.buffers\['my_counter'\]"
    ):
        ctx.my_counter = 1
    with pytest.raises(AttributeError, match=r"Fields: .*buffers.*epoch"):
        ctx.lossfn = print
    assert not hasattr(ctx, "my_counter")
    ctx.buffers["my_counter"] = 1
    assert ctx.buffers == {"my_counter": 1}


# -- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "good", "bad", "message"),
    [
        ("min_epochs", [0, 5, 10], [-1, 11], r"min_epochs=.* between 0 and max_epochs=10"),
        ("max_epochs", [0, 3, 100], [-1], r"max_epochs=-1 is invalid: expected an integer >= 0"),
    ],
)
def test_epoch_bounds_table(field: str, good: list[int], bad: list[int], message: str) -> None:
    for value in good:
        ctx = Context()
        setattr(ctx, field, value)
        assert getattr(ctx, field) == value
    for value in bad:
        ctx = Context()
        before = getattr(ctx, field)
        with pytest.raises(TraitError, match=message):
            setattr(ctx, field, value)
        assert getattr(ctx, field) == before


def test_max_epochs_cannot_go_below_min_epochs_or_the_current_epoch() -> None:
    ctx = Context()
    ctx.min_epochs = 4
    with pytest.raises(TraitError, match=r"max_epochs=3 .*>= 4 \(min_epochs=4"):
        ctx.max_epochs = 3
    ctx.min_epochs = 0
    ctx.epoch = 6
    with pytest.raises(TraitError, match=r"max_epochs=5 .*>= 6 .*current epoch=6"):
        ctx.max_epochs = 5
    assert ctx.max_epochs == 10
    ctx.max_epochs = 6
    assert ctx.max_epochs == 6


def test_min_epochs_above_max_says_how_to_fix() -> None:
    ctx = Context()
    with pytest.raises(TraitError, match="Raise max_epochs first"):
        ctx.min_epochs = 12


@pytest.mark.parametrize("field", ["loss_fn", "step", "backward", "step_opt", "autocast"])
def test_callable_fields_refuse_non_callables(field: str) -> None:
    ctx = Context()
    setattr(ctx, field, _func)
    with pytest.raises(TraitError, match=rf"{field} must be callable, got str: 'mse'"):
        setattr(ctx, field, "mse")
    assert getattr(ctx, field) is _func
    setattr(ctx, field, None)
    assert getattr(ctx, field) is None


@pytest.mark.parametrize(
    ("field", "value"), [("epoch", "3"), ("verbose", "yes"), ("records", [1]), ("model", "net")]
)
def test_typed_fields_refuse_the_wrong_type(field: str, value: Any) -> None:
    ctx = Context()
    with pytest.raises(TraitError, match=field):
        setattr(ctx, field, value)


def test_check_edit_validates_without_assigning() -> None:
    ctx = Context()
    assert ctx.check_edit("max_epochs", 4) == 4
    assert ctx.max_epochs == 10
    with pytest.raises(TraitError):
        ctx.check_edit("max_epochs", -2)
    with pytest.raises(AttributeError, match="no field 'nope'"):
        ctx.check_edit("nope", 1)


# -- callbacks --------------------------------------------------------------------------------


class Misnamed(Callback):
    def on_epoch_ends(self, ctx: Context) -> None:
        pass


class NoCtx(Callback):
    def on_epoch_end(self) -> None:  # type: ignore[override]
        pass


class TwoArgs(Callback):
    def on_epoch_end(self, ctx: Context, extra: int) -> None:  # type: ignore[override]
        pass


class OptionalArg(Callback):
    def on_epoch_end(self, ctx: Context, extra: int = 1) -> None:  # type: ignore[override]
        pass


def test_misnamed_callback_method_is_refused_naming_the_valid_names() -> None:
    with pytest.raises(
        TraitError,
        match=r"Misnamed\.on_epoch_ends is not an event.*"
        r"Valid method names: .*on_epoch_end, .*on_train_batch_end",
    ):
        Context(callbacks=[Misnamed()])
    ctx = Context()
    with pytest.raises(TraitError, match="on_epoch_ends is not an event"):
        ctx.callbacks = [Misnamed()]
    assert ctx.callbacks == []


@pytest.mark.parametrize("cls", [NoCtx, TwoArgs])
def test_bad_callback_signature_is_refused_when_added(cls: type) -> None:
    with pytest.raises(
        TraitError,
        match=rf"{cls.__name__}\.on_epoch_end must take one argument, "
        r"the context: def on_epoch_end\(self, ctx\)",
    ):
        Context(callbacks=[cls()])


def test_callback_with_optional_extra_argument_is_accepted() -> None:
    ctx = Context(callbacks=[OptionalArg()])
    assert len(ctx.callbacks) == 1


def test_callback_class_instead_of_instance_is_refused() -> None:
    with pytest.raises(TraitError, match=r"got the class Callback; pass an instance: Callback\(\)"):
        Context(callbacks=[Callback])


def test_duck_typed_callback_is_accepted() -> None:
    seen: list[str] = []

    class Duck:
        def on_fit_begin(self, ctx: Context) -> None:
            seen.append("fit_begin")

    ctx = Context(callbacks=[Duck()])
    ctx.call_callbacks("fit_begin")
    assert seen == ["fit_begin"]


def test_callbacks_are_sorted_by_weight_stably_and_attached() -> None:
    order: list[str] = []

    def make(name: str, weight: float) -> Callback:
        def on_epoch_end(self: Any, ctx: Context) -> None:
            order.append(name)

        cb = type(name, (Callback,), {"on_epoch_end": on_epoch_end, "weight": weight})()
        return cb

    cbs = [make("a", 5), make("b", -1), make("c", 0), make("d", 5), make("e", 0)]
    ctx = Context(callbacks=cbs)
    assert [type(cb).__name__ for cb in ctx.callbacks] == ["b", "c", "e", "a", "d"]
    assert all(cb.ctx is ctx for cb in cbs)
    ctx.call_callbacks(Event.on_epoch_end)
    assert order == ["b", "c", "e", "a", "d"]


def test_call_callbacks_runs_under_no_grad_and_restores_grad_mode() -> None:
    modes: list[bool] = []

    class Probe(Callback):
        def on_epoch_end(self, ctx: Context) -> None:
            modes.append(torch.is_grad_enabled())

    ctx = Context(callbacks=[Probe()])
    ctx.call_callbacks("on_epoch_end")
    assert torch.is_grad_enabled()
    with torch.no_grad():
        ctx.call_callbacks("on_epoch_end")
        assert not torch.is_grad_enabled()
    assert modes == [False, False]
    assert torch.is_grad_enabled()


def test_call_callbacks_error_names_the_callback_and_event_and_keeps_the_cause() -> None:
    class Boom(Callback):
        def on_train_batch_end(self, ctx: Context) -> None:
            raise ZeroDivisionError("bad math")

    ctx = Context(callbacks=[Boom()])
    ctx.epoch = 2
    ctx.iter = 3
    with pytest.raises(
        lw.CallbackError,
        match=r"Callback Boom\.on_train_batch_end raised "
        r"ZeroDivisionError: bad math \(epoch 2, batch 3\)",
    ) as info:
        ctx.call_callbacks("train_batch_end")
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    assert info.value.event == "on_train_batch_end"
    assert (info.value.epoch, info.value.batch) == (2, 3)
    assert torch.is_grad_enabled()


@pytest.mark.parametrize("signal_cls", [lw.StopFit, lw.StopEpoch, lw.EarlyStop])
def test_control_flow_exceptions_pass_through_call_callbacks(signal_cls: type) -> None:
    class Stop(Callback):
        def on_epoch_end(self, ctx: Context) -> None:
            raise signal_cls("enough")

    ctx = Context(callbacks=[Stop()])
    with pytest.raises(signal_cls, match="enough"):
        ctx.call_callbacks("on_epoch_end")


def test_call_callbacks_refuses_unknown_event() -> None:
    with pytest.raises(ValueError, match="not an event"):
        Context().call_callbacks("on_epoch_ends")


def test_pause_without_a_run_is_a_run_state_error() -> None:
    with pytest.raises(lw.RunStateError, match=r"ctx\.pause\(\) needs a Run.*run\.pause\(\)"):
        Context().pause()


def test_repr_says_where_it_is() -> None:
    ctx = Context(model=torch.nn.Linear(1, 1))
    ctx.epoch = 2
    ctx.iter = 5
    assert repr(ctx) == "<Context model=Linear epoch=2/10 iter=5 training=False>"


def test_finite_positive_refuses_with_a_config_error_naming_the_argument() -> None:
    assert finite_positive(3, "lr") == 3.0
    for bad in (0, -1.0, float("inf"), float("nan"), True, "0.1"):
        with pytest.raises(lw.ConfigError, match=r"^lr must be a finite positive number, got"):
            finite_positive(bad, "lr")

"""Every point at which the loop calls callbacks and can be paused."""

from __future__ import annotations

from enum import StrEnum

from luzwidget.core.exceptions import ConfigError

__all__ = ["Event"]


class Event(StrEnum):
    """A callback point of the training loop, named as in R's luz.

    The loop, as it runs (``fit``)::

        on_fit_begin
        for epoch in range(epoch + 1, max_epochs + 1):     # epoch_handlers wrap each epoch
            on_epoch_begin
            on_train_begin                                  # model.train(); ctx.training = True
            for iter, batch in enumerate(train_data, 1):
                on_train_batch_begin                        # ctx.batch, ctx.input, ctx.target set
                for opt_nm, opt in optimizers.items():      # the default step; a module's step()
                    pred = model(input)                     #   replaces this inner block
                    on_train_batch_after_pred
                    loss = loss_fn(pred, target)
                    on_train_batch_after_loss
                    on_train_batch_before_backward          # every optimizer's grads are zeroed
                    backward(loss)
                    on_train_batch_before_step              # gradients are there to look at
                    step_opt(opt)
                    on_train_batch_after_step
                on_train_batch_end                          # metrics are updated here
            on_train_end                                    # train metrics are logged
            if valid_data:                                  # under torch.no_grad()
                on_valid_begin                              # model.eval(); ctx.training = False
                for iter, batch in enumerate(valid_data, 1):
                    on_valid_batch_begin
                    for opt_nm in optimizers:
                        pred = model(input);  on_valid_batch_after_pred
                        loss = loss_fn(pred, target);  on_valid_batch_after_loss
                    on_valid_batch_end
                on_valid_end                                # valid metrics are logged
            on_epoch_end
        on_fit_end                                          # runs after StopFit too

    ``on_early_stopping`` fires when a callback stops training early (``StopFit``) and
    ``on_interrupt`` when the user interrupts a blocking ``fit()``; both come before
    ``on_fit_end``. ``evaluate()`` fires only the ``on_valid_*`` events, and ``predict()``
    fires ``on_predict_begin``, then ``on_predict_batch_begin`` / ``on_predict_batch_end``
    per batch, then ``on_predict_end``.

    The loop yields each event right after its callbacks ran, so a run can be paused
    there; a callback method is ``on_<event>(self, ctx)``.
    """

    on_fit_begin = "on_fit_begin"
    on_epoch_begin = "on_epoch_begin"
    on_train_begin = "on_train_begin"
    on_train_batch_begin = "on_train_batch_begin"
    on_train_batch_after_pred = "on_train_batch_after_pred"
    on_train_batch_after_loss = "on_train_batch_after_loss"
    on_train_batch_before_backward = "on_train_batch_before_backward"
    on_train_batch_before_step = "on_train_batch_before_step"
    on_train_batch_after_step = "on_train_batch_after_step"
    on_train_batch_end = "on_train_batch_end"
    on_train_end = "on_train_end"
    on_valid_begin = "on_valid_begin"
    on_valid_batch_begin = "on_valid_batch_begin"
    on_valid_batch_after_pred = "on_valid_batch_after_pred"
    on_valid_batch_after_loss = "on_valid_batch_after_loss"
    on_valid_batch_end = "on_valid_batch_end"
    on_valid_end = "on_valid_end"
    on_epoch_end = "on_epoch_end"
    on_fit_end = "on_fit_end"
    on_early_stopping = "on_early_stopping"
    on_interrupt = "on_interrupt"
    on_predict_begin = "on_predict_begin"
    on_predict_batch_begin = "on_predict_batch_begin"
    on_predict_batch_end = "on_predict_batch_end"
    on_predict_end = "on_predict_end"

    # -- where an event is in the loop: the groups every part of luzwidget uses -----------
    @property
    def in_epoch(self) -> bool:
        """Inside an epoch (``on_epoch_*``, ``on_train_*``, ``on_valid_*``): where
        ``epoch_handlers`` apply and ``StopEpoch`` means something."""
        return self in _IN_EPOCH

    @property
    def in_batch(self) -> bool:
        """A batch event of training, validation or prediction (``on_*_batch_*``)."""
        return self in _IN_BATCH

    @property
    def in_train_batch(self) -> bool:
        """An ``on_train_batch_*`` event."""
        return self in _IN_TRAIN_BATCH

    @property
    def is_batch_begin(self) -> bool:
        """The first event of a batch (training, validation or prediction)."""
        return self in _BATCH_BEGINS

    @property
    def is_batch_end(self) -> bool:
        """The last event of a batch (training, validation or prediction)."""
        return self in _BATCH_ENDS

    @property
    def is_after_pred(self) -> bool:
        """Right after the forward: ``on_train_batch_after_pred`` / ``on_valid_...``."""
        return self in _AFTER_PRED

    @property
    def is_after_loss(self) -> bool:
        """Right after the loss: ``on_train_batch_after_loss`` / ``on_valid_...``."""
        return self in _AFTER_LOSS

    @property
    def mid_batch(self) -> bool:
        """Inside a training or validation batch, before its optimizer steps: a pause here
        can abandon the rest of the batch (``run.skip()``)."""
        return self in _MID_BATCH

    @property
    def is_predict(self) -> bool:
        """An event of ``predict()`` (``on_predict_*``)."""
        return self in _PREDICT

    @property
    def depth(self) -> int:
        """How deep in the loop it fires: 0 fit, 1 epoch, 2 train/valid pass, 3 batch
        begin/end, 4 inside a batch (predict: 0 and 1), as ``show_loop`` indents it."""
        return _DEPTH[self]

    @classmethod
    def parse(cls, value: str | Event, *, argument: str = "event", hint: str = "") -> Event:
        """Return the event named ``value``; accept the name with or without ``on_``.

        ``argument`` names what the caller was given and ``hint`` (another way to say it)
        ends the message, so callers need not re-wrap the error.

        Raises
        ------
        ConfigError
            If ``value`` names no event (a ``ValueError``); the message lists the names.
        """
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            name = value if value.startswith("on_") else f"on_{value}"
            if name in cls.__members__:
                return cls[name]
        valid = ", ".join(cls.__members__)
        raise ConfigError(
            f"{argument}={value!r} is not an event; expected one of: {valid}."
            + (f" {hint}" if hint else "")
        )


def _named(*prefixes: str) -> frozenset[Event]:
    return frozenset(e for e in Event if e.value.startswith(prefixes))


_IN_EPOCH = _named("on_train", "on_valid", "on_epoch")
_IN_BATCH = frozenset(e for e in Event if "_batch_" in e.value)
_IN_TRAIN_BATCH = _named("on_train_batch_")
_PREDICT = _named("on_predict")
_BATCH_BEGINS = frozenset(e for e in _IN_BATCH if e.value.endswith("_batch_begin"))
_BATCH_ENDS = frozenset(e for e in _IN_BATCH if e.value.endswith("_batch_end"))
_AFTER_PRED = frozenset({Event.on_train_batch_after_pred, Event.on_valid_batch_after_pred})
_AFTER_LOSS = frozenset({Event.on_train_batch_after_loss, Event.on_valid_batch_after_loss})
_MID_BATCH = (_IN_BATCH - _PREDICT - _BATCH_ENDS) - {Event.on_train_batch_after_step}


def _depth(event: Event) -> int:
    if event in _PREDICT:
        return 1 if event in _IN_BATCH else 0
    if event in _IN_BATCH:
        return 3 if event in _BATCH_BEGINS | _BATCH_ENDS else 4
    if event.value.startswith(("on_train", "on_valid")):
        return 2
    return 1 if event.value.startswith("on_epoch") else 0


_DEPTH = {event: _depth(event) for event in Event}

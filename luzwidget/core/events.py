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

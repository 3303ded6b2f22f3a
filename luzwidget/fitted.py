"""What ``fit()`` returns: the trained model, its records, and what to do next with it."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

from luzwidget.callbacks import Interrupt, Metrics, Profile, Progress
from luzwidget.control.run import Run
from luzwidget.core.data import as_loader
from luzwidget.core.exceptions import RunStateError
from luzwidget.core.loop import evaluate_loop, predict_loop
from luzwidget.core.records import Records
from luzwidget.core.states import RunState
from luzwidget.metrics.base import metric_set
from luzwidget.session import build_run, drive, drive_to_end, loop_of, side_context

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from luzwidget.core.context import Context
    from luzwidget.module import Setup

__all__ = ["Evaluation", "Fitted"]


class Fitted:
    """A trained model with its records; it can predict, evaluate and keep training.

    Attributes
    ----------
    model : nn.Module
        The trained module.
    records : dict
        Everything logged: ``records["metrics"]["train"|"valid"][epoch - 1]`` and
        ``records["profile"]``.
    history : Records
        A read-only view of ``records``: ``history.metrics("valid")``, ``history.rows()``.
    run : Run
        The run that trained it; after an interrupted ``fit()``, ``run.resume()`` continues.
    """

    def __init__(self, spec: Setup, run: Run) -> None:
        self.spec = spec
        self.run = run

    @property
    def ctx(self) -> Context:
        """The context of the run."""
        return self.run.ctx

    @property
    def model(self) -> torch.nn.Module:
        """The trained module."""
        model: torch.nn.Module = self.ctx.model  # traits read as Any
        return model

    @property
    def records(self) -> dict[str, Any]:
        """Everything logged during training."""
        records: dict[str, Any] = self.ctx.records
        return records

    @property
    def history(self) -> Records:
        """A :class:`~luzwidget.core.records.Records` view over ``records`` (``ctx.history``)."""
        return self.ctx.history

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimizers by name, with their state (training can continue)."""
        optimizers: dict[str, torch.optim.Optimizer] = self.ctx.optimizers
        return optimizers

    @property
    def hparams(self) -> dict[str, Any]:
        """The module's constructor arguments."""
        return dict(self.spec.hparams)

    @property
    def opt_hparams(self) -> dict[str, Any]:
        """The optimizer's arguments."""
        return dict(self.spec.opt_hparams)

    def get_metrics(self) -> pd.DataFrame:
        """A DataFrame with columns set, metric, epoch, value (luz's ``get_metrics``)."""
        return Records(self.records).frame()

    def fit(self, data: Any, epochs: Any = 10, **kwargs: Any) -> Fitted:
        """Train ``epochs`` more epochs, keeping optimizer state and records (blocking)."""
        again = functools.partial(Fitted, self.spec)
        fitted: Fitted = drive_to_end(self._continue(data, epochs, kwargs, False), again)
        return fitted

    def continue_run(self, data: Any, epochs: Any = 10, **kwargs: Any) -> Run:
        """Like :meth:`fit`, but return a :class:`Run` that has not started yet (with
        automatic snapshots at epoch ends, as ``setup(...).run()``)."""
        return self._continue(data, epochs, kwargs, True)

    def _continue(self, data: Any, epochs: Any, kwargs: dict[str, Any], snapshots: bool) -> Run:
        state = self.run.state
        if state == RunState.ERROR:
            raise RunStateError(
                "the run of this model stopped on an error; fitted.run.retry() or "
                "fitted.run.skip() goes on, fitted.run.stop() ends it, before training more."
            )
        if state == RunState.RUNNING:
            raise RunStateError(
                "the run of this model is still training; run.wait() or run.stop() first."
            )
        finish = functools.partial(Fitted, self.spec)
        return build_run(
            self.spec, data, epochs, kwargs, previous=self.ctx, finish=finish, snapshots=snapshots
        )

    def predict(
        self,
        newdata: Any,
        stack: bool = True,
        dataloader_options: Mapping[str, Any] | None = None,
        callbacks: Any = None,
        verbose: bool | None = False,
    ) -> Any:
        """Predict on ``newdata`` in eval mode under no_grad (the module's ``predict`` if any).

        Parameters
        ----------
        newdata
            Same kinds as ``fit``'s data; a target, if present, is ignored.
        stack
            Concatenate the batches' outputs (tensors, or tuples/dicts of tensors); False
            returns the list of per-batch outputs. Outputs that cannot be concatenated
            (e.g. distributions) are returned as a list.
        """
        loader = as_loader(
            newdata,
            training=False,
            options=dataloader_options,
            argument="newdata",
            ordered="predict()",
        )
        ctx = side_context(self.ctx, loader, callbacks, verbose, [Progress(), Interrupt()])
        ctx.data = ctx.valid_data
        model = ctx.model
        predict = getattr(model, "predict", None)
        predict = predict if callable(predict) else model
        out: list[Any] = []
        drive(Run(ctx, loop_of(predict_loop, predict, out)))
        return stack_outputs(out) if stack else out

    def evaluate(
        self,
        data: Any,
        metrics: Any = None,
        callbacks: Any = None,
        verbose: bool | None = False,
        dataloader_options: Mapping[str, Any] | None = None,
    ) -> Evaluation:
        """Run the validation loop once on ``data``; ``metrics`` may replace the model's."""
        loader = as_loader(data, training=False, options=dataloader_options, ordered="evaluate()")
        chosen = self.spec.metrics if metrics is None else metric_set(metrics)
        defaults = [Profile(), Metrics(chosen), Progress(), Interrupt()]
        ctx = side_context(self.ctx, loader, callbacks, verbose, defaults)
        ctx.loss_fn = self.ctx.loss_fn
        drive(Run(ctx, loop_of(evaluate_loop)))
        return Evaluation(ctx.records)

    # -- luzwidget.confusion ---------------------------------------------------------------
    def confusion(
        self, data: Any = None, set: str = "valid", *, plot: bool = False, **kwargs: Any
    ) -> pd.DataFrame | go.Figure:
        """The confusion matrix of a classifier: rows the true class, columns the predicted.

        Parameters
        ----------
        data
            Data to predict on (same kinds as ``predict``); default the run's ``set``.
        set
            ``"valid"`` (default) or ``"train"``: which of the fit's data, when ``data`` is None.
        plot
            Return a plotly heatmap of it instead of the DataFrame.
        **kwargs
            ``classes`` (names for 0, 1, ...), ``threshold`` (one output column: class 1
            above it; default 0, for logits), ``dataloader_options``.

        Examples
        --------
        >>> fitted.confusion()                 # a DataFrame of counts
        >>> fitted.confusion(plot=True)        # the same as a heatmap
        """
        from luzwidget.confusion import confusion

        return confusion(self, data, set, plot=plot, **kwargs)

    def plot(self) -> go.Figure:
        """A plotly figure of every metric, train and valid, over epochs."""
        from luzwidget.plots import records_figure

        return records_figure(self.records)

    def __repr__(self) -> str:
        last = {s: self.ctx.get_metrics(s) for s in ("train", "valid") if self.ctx.get_metrics(s)}
        return f"<Fitted {type(self.model).__name__}: {self.ctx.epoch} epochs, last {last}>"


class Evaluation:
    """The result of ``evaluate()``: records and ``get_metrics()``."""

    def __init__(self, records: dict[str, Any]) -> None:
        self.records = records

    @property
    def history(self) -> Records:
        """A :class:`~luzwidget.core.records.Records` view over ``records``."""
        return Records(self.records)

    def get_metrics(self) -> pd.DataFrame:
        """A DataFrame with columns set, metric, epoch, value."""
        return Records(self.records).frame()

    def __getitem__(self, name: str) -> Any:
        """A metric's value, e.g. ``evaluation["loss"]``."""
        values = self.history.metrics("valid", 1, default={})
        if name not in values:
            raise KeyError(f"no metric {name!r}; computed: {', '.join(values)}.")
        return values[name]

    def __repr__(self) -> str:
        values = self.history.metrics("valid", 1, default={})
        shown = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()
        )
        return f"<Evaluation {shown}>"


def stack_outputs(outputs: list[Any]) -> Any:
    """Concatenate per-batch outputs along dim 0: tensors, tuples, lists and dicts of them."""
    if not outputs:
        return outputs
    first = outputs[0]
    if isinstance(first, torch.Tensor):
        if all(isinstance(o, torch.Tensor) for o in outputs):
            return torch.cat([o.reshape(1) if o.ndim == 0 else o for o in outputs])
        return outputs
    if isinstance(first, tuple | list) and all(type(o) is type(first) for o in outputs):
        columns = [stack_outputs([o[i] for o in outputs]) for i in range(len(first))]
        if isinstance(first, tuple) and hasattr(first, "_fields"):
            return type(first)(*columns)
        return type(first)(columns)
    if isinstance(first, Mapping) and all(isinstance(o, Mapping) for o in outputs):
        return {k: stack_outputs([o[k] for o in outputs]) for k in first}
    return outputs

"""The confusion matrix of a classification model: ``fitted.confusion()``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from luzwidget.core.callback import Callback
from luzwidget.core.exceptions import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from luzwidget.core.context import Context
    from luzwidget.fitted import Fitted

__all__ = ["confusion", "confusion_figure", "confusion_matrix"]

SETS = ("train", "valid")


class _Collect(Callback):
    """Keeps each predicted batch's output and target, on the CPU."""

    run_bound = True  # luzwidget's own, for this run only: a branch does not copy it

    def __init__(self) -> None:
        self.preds: list[torch.Tensor] = []
        self.targets: list[torch.Tensor] = []

    def on_predict_batch_end(self, ctx: Context) -> None:
        if not isinstance(ctx.target, torch.Tensor):
            raise DataError(
                "confusion() needs a target in each batch, (input, target); "
                f"got {type(ctx.target).__name__}."
            )
        self.preds.append(ctx.pred.detach().cpu())
        self.targets.append(ctx.target.detach().cpu())


def confusion(
    fitted: Fitted,
    data: Any = None,
    set: str = "valid",
    *,
    classes: Sequence[Any] | None = None,
    threshold: float = 0.0,
    plot: bool = False,
    dataloader_options: Mapping[str, Any] | None = None,
) -> pd.DataFrame | go.Figure:
    """Predict on ``data`` and count (true, predicted) class pairs; see ``Fitted.confusion``."""
    if data is None:
        if set not in SETS:
            raise ConfigError(f"set must be one of {SETS}, got {set!r}.")
        data = fitted.ctx.valid_data if set == "valid" else fitted.ctx.train_data
        if data is None:
            raise ConfigError(
                f"this model was fitted without {set}_data; pass data=(x, y) or another set."
            )
    collect = _Collect()
    fitted.predict(data, stack=False, callbacks=[collect], dataloader_options=dataloader_options)
    if not collect.preds:
        raise DataError("confusion(): the data has no batches.")
    pred, target = torch.cat(collect.preds), torch.cat(collect.targets)
    frame = confusion_matrix(pred, target, classes=classes, threshold=threshold)
    return confusion_figure(frame) if plot else frame


def confusion_matrix(
    pred: torch.Tensor,
    target: torch.Tensor,
    classes: Sequence[Any] | None = None,
    threshold: float = 0.0,
) -> pd.DataFrame:
    """Counts of (true, predicted) class: rows are the true class, columns the predicted one.

    Parameters
    ----------
    pred
        ``(N, C)`` scores (the class is the argmax), or ``(N,)`` / ``(N, 1)`` for two classes
        (class 1 where the output is above ``threshold``: 0 for logits, 0.5 for probabilities).
    target
        ``(N,)`` class indices, or ``(N, C)`` one-hot / probabilities (argmax).
    classes
        Names for the classes 0, 1, ...; default the indices.
    """
    import pandas as pd

    binary = pred.ndim < 2 or pred.shape[1] == 1
    predicted = (pred.reshape(-1) > threshold).long() if binary else pred.argmax(1)
    if target.ndim == 2 and not binary and target.shape[1] == pred.shape[1]:
        true = target.argmax(1)
    else:
        true = target.reshape(-1).long()
    if true.numel() != predicted.numel():
        raise DataError(
            f"confusion(): {predicted.numel()} predictions but {true.numel()} targets; the "
            "target should hold one class index per example."
        )
    if true.numel() and int(true.min()) < 0:
        raise DataError(f"confusion(): targets must be class indices >= 0, got {int(true.min())}.")
    n = max(2 if binary else pred.shape[1], int(true.max()) + 1 if true.numel() else 0)
    if classes is not None:
        if len(classes) < n:
            raise ConfigError(f"classes names {len(classes)} classes, the data has {n}.")
        n = len(classes)
    counts = torch.bincount(true * n + predicted, minlength=n * n).reshape(n, n)
    labels = list(classes) if classes is not None else list(range(n))
    frame = pd.DataFrame(counts.numpy(), index=labels, columns=labels)
    frame.index.name, frame.columns.name = "true", "predicted"
    return frame


def confusion_figure(frame: pd.DataFrame) -> go.Figure:
    """A plotly heatmap of a confusion matrix, counts written in the cells."""
    try:
        import plotly.graph_objects as go
    except ImportError:  # pragma: no cover - plotly is a dependency
        raise ImportError("confusion(plot=True) needs plotly: pip install plotly") from None
    x = [str(c) for c in frame.columns]
    y = [str(c) for c in frame.index]
    figure = go.Figure(
        go.Heatmap(
            z=frame.to_numpy(),
            x=x,
            y=y,
            text=frame.to_numpy(),
            texttemplate="%{text}",
            colorscale="Blues",
            hovertemplate="true %{y}, predicted %{x}: %{z}<extra></extra>",
        )
    )
    figure.update_layout(
        xaxis_title="predicted",
        yaxis_title="true",
        yaxis_autorange="reversed",
        xaxis_type="category",
        yaxis_type="category",
        width=420,
        height=400,
    )
    return figure

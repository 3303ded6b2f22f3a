"""Static plotly figures: training records (``fitted.plot()``) and the LR finder's curve.

Plain :class:`plotly.graph_objects.Figure` objects, no widget: imported lazily by the
``plot()`` methods, so the headless core loads plotly only when a figure is asked for.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import plotly.graph_objects as go
from numpy.typing import ArrayLike
from plotly.subplots import make_subplots

from luzwidget.core.limits import SET_COLORS
from luzwidget.core.records import Records

__all__ = ["COLORS", "lr_finder_figure", "records_figure"]

COLORS = SET_COLORS
"""Line colours by set, the same as the dashboard's (:data:`luzwidget.core.limits.SET_COLORS`)."""

_Line = tuple[list[int], list[float | None]]  # (epochs, values; None where not finite)


def _metric_lines(records: Mapping[str, Any]) -> dict[str, dict[str, _Line]]:
    """``{metric: {set: (epochs, values)}}`` from ``records["metrics"]``, in logged order."""
    out: dict[str, dict[str, _Line]] = {}
    for set_name, metric, epoch, value in Records(records).rows():
        try:
            v = float(value)
        except (TypeError, ValueError):
            continue
        xs, ys = out.setdefault(metric, {}).setdefault(set_name, ([], []))
        xs.append(epoch)
        ys.append(v if math.isfinite(v) else None)
    return out


def records_figure(records: Mapping[str, Any], *, title: str | None = None) -> go.Figure:
    """One subplot per metric, with the train and valid values over epochs.

    Parameters
    ----------
    records : mapping
        ``ctx.records`` / ``fitted.records``: ``records["metrics"][set][epoch - 1]`` is a
        dict such as ``{"loss": 0.31, "acc": 0.9}``.
    title : str, optional
        Figure title.

    Returns
    -------
    plotly.graph_objects.Figure
        Empty (with a note) when nothing was recorded.

    Examples
    --------
    >>> fig = records_figure({"metrics": {"train": [{"loss": 1.0}, {"loss": 0.5}]}})
    >>> [trace.name for trace in fig.data]
    ['train']
    """
    lines = _metric_lines(records)
    if not lines:
        fig = go.Figure()
        fig.add_annotation(text="No metrics recorded yet.", showarrow=False)
        fig.update_layout(
            template="plotly_white", height=240, xaxis_visible=False, yaxis_visible=False
        )
        return fig
    metrics = list(lines)
    cols = min(len(metrics), 3)
    rows = math.ceil(len(metrics) / cols)
    fig = make_subplots(
        rows=rows, cols=cols, subplot_titles=metrics, horizontal_spacing=0.08,
        vertical_spacing=0.16,
    )  # fmt: skip
    shown: set[str] = set()
    for i, metric in enumerate(metrics):
        row, col = divmod(i, cols)
        for trace in _traces(metric, lines[metric], shown):
            fig.add_trace(trace, row=row + 1, col=col + 1)
        fig.update_xaxes(title_text="epoch", tickformat="d", row=row + 1, col=col + 1)
    fig.update_layout(
        template="plotly_white", height=300 * rows, title=title,
        margin={"l": 50, "r": 20, "t": 60 if title else 40, "b": 40},
        legend={"orientation": "h", "x": 1, "xanchor": "right", "y": 1.08},
    )  # fmt: skip
    return fig


def _traces(metric: str, sets: dict[str, _Line], shown: set[str]) -> list[go.Scatter]:
    """One line per set (train, valid) for one metric; each set in the legend once."""
    traces = []
    for set_name, (xs, ys) in sets.items():
        line = {"color": COLORS.get(set_name), "dash": "dot" if set_name == "valid" else None}
        trace = go.Scatter(
            x=xs, y=ys, name=set_name, mode="lines+markers", legendgroup=set_name, line=line,
            showlegend=set_name not in shown,
            hovertemplate=f"{set_name} {metric}: %{{y:.4g}}<extra>epoch %{{x}}</extra>",
        )  # fmt: skip
        traces.append(trace)
        shown.add(set_name)
    return traces


def lr_finder_figure(
    lr: np.ndarray,
    loss: ArrayLike,
    smoothed: np.ndarray,
    suggested: float | None,
    *,
    beta: float,
    raw: bool = True,
) -> go.Figure:
    """The LR finder's loss against the learning rate (log axis), the suggestion marked.

    Parameters
    ----------
    lr, loss, smoothed : array-like
        The learning rate of each batch, its raw loss and the smoothed loss.
    suggested : float or None
        The suggested learning rate (one of ``lr``), or None for no marker.
    beta : float
        The smoothing used, for the legend.
    raw : bool, default True
        Also draw the raw loss (faint).
    """
    fig = go.Figure()
    if raw:
        fig.add_scatter(
            x=lr, y=loss, mode="lines", name="loss", line={"color": "rgba(100,100,100,0.3)"}
        )
    fig.add_scatter(
        x=lr, y=smoothed, mode="lines", name=f"smoothed (beta {beta})", line={"color": "#1f77b4"}
    )
    if suggested is not None:
        at = int(np.flatnonzero(lr == suggested)[0])
        fig.add_scatter(
            x=[suggested],
            y=[smoothed[at]],
            mode="markers+text",
            name="suggested lr",
            marker={"color": "#d62728", "size": 11},
            text=[f"suggested lr {suggested:.2g}"],
            textposition="top right",
        )
    fig.update_layout(
        title="Learning rate finder",
        xaxis_title="learning rate",
        yaxis_title="loss",
        template="plotly_white",
    )
    fig.update_xaxes(type="log")
    return fig

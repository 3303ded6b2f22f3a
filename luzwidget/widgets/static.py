"""The dashboard as static HTML: what a notebook viewer without a kernel shows.

GitHub, nbviewer and ``jupyter nbconvert --to html`` cannot run the widget; next to its view
the dashboard's output carries ``text/html`` from :func:`static_html`: the run's state, a
table of the last value of every metric, and small inline SVG plots of the per-epoch curves
and of the per-batch loss. No JavaScript, no external resource, only escaped text.
Headless: it reads the run and plain lists, and imports no widget library.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from luzwidget.core.limits import SET_COLORS
from luzwidget.core.records import Records

if TYPE_CHECKING:
    from luzwidget.control.run import Run

__all__ = ["static_html", "svg_plot"]

WIDTH, HEIGHT = 260, 120
_PAD_L, _PAD_R, _PAD_T, _PAD_B = 44, 8, 8, 20
_STYLE = "font-family:system-ui,sans-serif;font-size:12px;"
_MAX_POINTS = 400
_Curves = dict[str, dict[str, tuple[list[int], list[float]]]]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def _finite(xs: Sequence[float], ys: Sequence[Any]) -> list[tuple[float, float]]:
    pts = [(float(x), float(y)) for x, y in zip(xs, ys, strict=False) if _is_number(y)]
    step = max(1, len(pts) // _MAX_POINTS)  # bounded, whatever the run length
    return pts[::step] + ([pts[-1]] if pts and (len(pts) - 1) % step else [])


def _is_number(y: Any) -> bool:
    return isinstance(y, int | float) and not isinstance(y, bool) and math.isfinite(y)


def svg_plot(title: str, lines: Sequence[tuple[str, str, Sequence[float], Sequence[Any]]]) -> str:
    """A small inline SVG of ``lines`` = ``(name, colour, xs, ys)``; non-finite ys are skipped.

    Returns an empty string when no line has a finite point.
    """
    series = [(name, color, _finite(xs, ys)) for name, color, xs, ys in lines]
    series = [s for s in series if s[2]]
    if not series:
        return ""
    all_x = [x for _, _, pts in series for x, _ in pts]
    all_y = [y for _, _, pts in series for _, y in pts]
    x0, x1 = min(all_x), max(all_x)
    y0, y1 = min(all_y), max(all_y)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
    w, hgt = WIDTH - _PAD_L - _PAD_R, HEIGHT - _PAD_T - _PAD_B

    def px(x: float, y: float) -> str:
        return f"{_PAD_L + (x - x0) / (x1 - x0) * w:.1f},{_PAD_T + (y1 - y) / (y1 - y0) * hgt:.1f}"

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{html.escape(title)}">',
        f'<rect x="{_PAD_L}" y="{_PAD_T}" width="{w}" height="{hgt}" fill="none" '
        'stroke="#8c959f" stroke-width="0.5"/>',
    ]
    for text, y, anchor in ((_fmt(y1), _PAD_T + 8, "end"), (_fmt(y0), _PAD_T + hgt, "end")):
        parts.append(
            f'<text x="{_PAD_L - 4}" y="{y}" font-size="9" text-anchor="{anchor}" '
            f'fill="#6e7781">{html.escape(text)}</text>'
        )
    for text, x, anchor in ((_fmt(x0), _PAD_L, "start"), (_fmt(x1), _PAD_L + w, "end")):
        parts.append(
            f'<text x="{x}" y="{HEIGHT - 6}" font-size="9" text-anchor="{anchor}" '
            f'fill="#6e7781">{html.escape(text)}</text>'
        )
    for name, color, pts in series:
        points = " ".join(px(x, y) for x, y in pts)
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{html.escape(color)}" '
            f'stroke-width="1.5"><title>{html.escape(name)}</title></polyline>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _metric_table(records: Records) -> tuple[str, _Curves]:
    """The last value of each metric per set, as a table; and every curve by metric, set."""
    curves: _Curves = {}
    for set_name in records.sets():
        for epoch in range(1, records.epochs(set_name) + 1):
            for metric, value in records.metrics(set_name, epoch).items():
                xs, ys = curves.setdefault(metric, {}).setdefault(set_name, ([], []))
                xs.append(epoch)
                ys.append(float(value) if _is_number(value) else math.nan)
    if not curves:
        return "", curves
    sets = records.sets()
    head = "".join(f"<th>{html.escape(s)}</th>" for s in sets)
    rows = []
    for metric, by_set in curves.items():
        cells = "".join(f"<td>{_fmt(by_set[s][1][-1]) if s in by_set else ''}</td>" for s in sets)
        rows.append(f"<tr><th>{html.escape(metric)}</th>{cells}</tr>")
    table = (
        '<table class="lw-static-metrics" style="border-collapse:collapse;margin:4px 0">'
        f"<thead><tr><th>metric</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    return table, curves


def static_html(run: Run, stream: dict[str, dict[str, list[Any]]] | None = None) -> str:
    """The run as static HTML: state, position, metrics table and SVG curves.

    Parameters
    ----------
    run : Run
        The run shown.
    stream : dict, optional
        The dashboard's per-batch loss series, ``{name: {"x": [...], "y": [...]}}``.
    """
    ctx = run.ctx
    state = str(run.state)
    where = f"epoch {ctx.epoch} / {ctx.max_epochs}"
    reason = getattr(run, "reason", "") or ""
    records = Records(ctx.records)
    table, curves = _metric_table(records)
    plots = []
    for name, s in (stream or {}).items():
        label = f"{name} per batch"
        plots.append((label, svg_plot(label, [(label, SET_COLORS["train"], s["x"], s["y"])])))
    for metric, by_set in curves.items():
        lines = [(s, SET_COLORS.get(s, "#6e7781"), xs, ys) for s, (xs, ys) in by_set.items()]
        plots.append((metric, svg_plot(metric, lines)))
    figures = "".join(
        f'<figure style="margin:0"><figcaption>{html.escape(title)}</figcaption>{svg}</figure>'
        for title, svg in plots
        if svg
    )
    legend = " ".join(
        f'<span style="color:{c}">&#9632; {html.escape(s)}</span>' for s, c in SET_COLORS.items()
    )
    return (
        f'<div class="lw-static" style="{_STYLE}">'
        f"<div><strong>luzwidget run</strong> · state <strong>{html.escape(state)}</strong>"
        f" · {html.escape(where)}{' · ' + html.escape(reason) if reason else ''}</div>"
        f"{table}"
        f'<div style="display:flex;flex-wrap:wrap;gap:8px">{figures}</div>'
        f"<div style='color:#6e7781'>{legend} · a static view: open the notebook with a "
        "kernel for the live dashboard.</div></div>"
    )

"""luzwidget/plots.py: static plotly figures, outside widgets/ (Run.dashboard is the one door)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from luzwidget.core import limits
from luzwidget.plots import COLORS, lr_finder_figure, records_figure

PACKAGE = Path(__file__).resolve().parents[1] / "luzwidget"


def test_records_figure_has_one_panel_per_metric_and_a_line_per_set() -> None:
    records = {
        "metrics": {
            "train": [{"loss": 1.0, "acc": 0.5}, {"loss": 0.5, "acc": 0.7}, {"loss": 0.25}],
            "valid": [{"loss": 1.1, "acc": 0.4}],
        }
    }
    fig = records_figure(records, title="t")
    names = {(t.name, t.xaxis) for t in fig.data}
    assert names == {("train", "x"), ("valid", "x"), ("train", "x2"), ("valid", "x2")}
    assert list(fig.data[0].x) == [1, 2, 3]
    assert fig.data[0].line.color == COLORS["train"] == limits.SET_COLORS["train"]
    assert not records_figure({}).data


def test_lr_finder_figure_marks_the_suggestion_on_a_log_axis() -> None:
    lr = np.geomspace(1e-4, 1, 5)
    loss = [1.0, 0.8, 0.5, 0.6, 2.0]
    fig = lr_finder_figure(lr, loss, np.array(loss), float(lr[2]), beta=0.9)
    assert [t.name for t in fig.data] == ["loss", "smoothed (beta 0.9)", "suggested lr"]
    assert fig.layout.xaxis.type == "log"
    assert list(fig.data[2].y) == [0.5]
    bare = lr_finder_figure(lr, loss, np.array(loss), None, beta=0.5, raw=False)
    assert [t.name for t in bare.data] == ["smoothed (beta 0.5)"]


def test_the_core_reaches_the_widgets_only_through_run_dashboard() -> None:
    importers = sorted(
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        # remote/ sits above widgets/ (docs/architecture.md): its server reuses the Collector
        if not {"widgets", "remote"} & set(path.relative_to(PACKAGE).parts)
        and re.search(r"^\s*(from|import) luzwidget\.widgets", path.read_text(), re.M)
    )
    # remote/ serves a run to a notebook: its server reuses the headless builders of the
    # widgets package (collector, commands, feed: no widget library), and remote/dashboard.py
    # is itself a widget, reached only through the proxy's dashboard(), like run.dashboard().
    assert [p for p in importers if not p.startswith("remote/")] == ["control/run.py"]

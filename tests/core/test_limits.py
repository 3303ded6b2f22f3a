"""luzwidget/limits.py: the Python limits, and the copies the front end keeps of them."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

import luzwidget as lw
from luzwidget import plots
from luzwidget.core import limits
from luzwidget.widgets import Dashboard, eventlog, stream

JS = Path(__file__).resolve().parents[2] / "js" / "src"


def test_python_uses_one_source() -> None:
    assert eventlog.LOG_MAX is limits.LOG_MAX
    assert plots.COLORS is limits.SET_COLORS
    series = stream.DownsampledSeries()
    assert (series.capacity, series.beta) == (limits.STREAM_CAPACITY, limits.STREAM_BETA)


def test_the_front_end_takes_the_limits_from_the_snapshot() -> None:
    store = (JS / "store.js").read_text()
    for value in (limits.LOG_MAX, limits.STREAM_CAPACITY, limits.STREAM_BETA):
        assert not re.search(rf"\b{re.escape(str(value))}\b", store), value  # no copy
    assert "logMax: msg.log_max" in store
    run = lw.setup(nn.Linear(1, 1), loss=nn.MSELoss(), optimizer=torch.optim.SGD).run(
        (torch.zeros(64, 1), torch.zeros(64, 1)), epochs=1, verbose=False
    )
    snapshot = Dashboard(run)._collector.collect(full=True)
    assert snapshot is not None
    assert (snapshot["log_max"], snapshot["capacity"]) == (limits.LOG_MAX, limits.STREAM_CAPACITY)


def test_the_front_end_colour_copies_match() -> None:
    css = (JS / "dashboard.css").read_text()
    plots = (JS / "parts" / "plots.js").read_text()
    for set_name, color in limits.SET_COLORS.items():
        assert f"--lw-{set_name}: var(--jp-" in css
        assert re.search(rf"--lw-{set_name}: var\([^;]*{color}\)", css), set_name
        assert f'v("--lw-{set_name}", "{color}")' in plots

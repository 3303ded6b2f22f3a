"""luzwidget/limits.py: the Python limits, and the copies the front end keeps of them."""

from __future__ import annotations

import re
from pathlib import Path

from luzwidget import limits, plots
from luzwidget.widgets import eventlog, stream

JS = Path(__file__).resolve().parents[1] / "js" / "src"


def test_python_uses_one_source() -> None:
    assert eventlog.LOG_MAX is limits.LOG_MAX
    assert plots.COLORS is limits.SET_COLORS
    series = stream.DownsampledSeries()
    assert (series.capacity, series.beta) == (limits.STREAM_CAPACITY, limits.STREAM_BETA)


def test_the_front_end_copies_match() -> None:
    store = (JS / "store.js").read_text()
    assert re.search(r"const LOG_MAX = (\d+);", store)[1] == str(limits.LOG_MAX)  # type: ignore[index]
    found = re.search(r"stream: \{ capacity: (\d+), beta: ([\d.]+)", store)
    assert found is not None
    assert (int(found[1]), float(found[2])) == (limits.STREAM_CAPACITY, limits.STREAM_BETA)
    css = (JS / "dashboard.css").read_text()
    plots = (JS / "parts" / "plots.js").read_text()
    for set_name, color in limits.SET_COLORS.items():
        assert f"--lw-{set_name}: var(--jp-" in css
        assert re.search(rf"--lw-{set_name}: var\([^;]*{color}\)", css), set_name
        assert f'v("--lw-{set_name}", "{color}")' in plots

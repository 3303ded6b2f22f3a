"""The "Layers over time" panel in a real kernel: opened by the browser's ``panel`` command,
it publishes new columns at most every INSPECT_EVERY_S within the dashboard's throttle (each
sample once, in order), the tracker samples at most every EVERY_S while the run trains, and
closing the panel stops both the messages and the run's tracker callback."""

from __future__ import annotations

import time

import pytest
from kernel_harness import Kernel, traffic
from test_dashboard_kernel import _comm_msgs, _payload, show

from luzwidget.insight.history import EVERY_S
from luzwidget.widgets.inspector import INSPECT_EVERY_S

pytestmark = pytest.mark.kernel

CALLBACKS = "sorted(type(cb).__name__ for cb in run.ctx.callbacks)"


def test_history_panel_publishes_within_the_throttle_and_closing_stops_it(kernel: Kernel) -> None:
    browser = show(kernel)
    snapshot = browser.hello()
    assert snapshot["history"] == {"open": False}
    assert "HistoryTracker" not in kernel.eval(CALLBACKS)
    ack = browser.command({"cmd": "panel", "name": "history", "open": True})
    assert ack["ok"], ack
    assert "HistoryTracker" in kernel.eval(CALLBACKS)

    start = kernel.mark()
    kernel.execute("run.start()")
    first = kernel.eval("position()")
    deadline = time.monotonic() + 60
    while True:
        time.sleep(0.25)  # polling interval, not a synchronisation
        last = kernel.eval("position()")
        if last[2] - first[2] >= 3:
            break
        assert time.monotonic() < deadline, "the run did not train for 3 s"
    end = kernel.mark()
    ours = [m for m in _comm_msgs(kernel, start, end) if m.content["comm_id"] == browser.comm_id]
    contents = [m.content["data"]["content"] for m in ours]
    history = [m for m, c in zip(ours, contents, strict=True) if "history" in c]
    cols = [col for c in contents if "history" in c for col in c["history"]["cols"]]
    seconds = last[2] - first[2]
    print(
        f"\nhistory open: {traffic(ours).per_second:.1f} messages/s, history in "
        f"{traffic(history).per_second:.1f}/s, {len(cols) / seconds:.1f} samples/s, "
        f"{last[1] - first[1]} batches, max {max(map(_payload, ours)):,} B"
    )
    assert traffic(ours).per_second <= 20
    assert len(history) >= 3  # live while the run trains...
    assert traffic(history).per_second <= 1.2 / INSPECT_EVERY_S  # ...at its own rate at most
    seqs = [c[0] for c in cols]
    assert seqs == sorted(set(seqs))  # each sample once, in order
    assert len(cols) <= (seconds + 1) / EVERY_S + 2  # the tracker's own rate
    assert max(map(_payload, ours)) < 50_000

    ack = browser.command({"cmd": "panel", "name": "history", "open": False})
    assert ack["ok"], ack
    deadline = time.monotonic() + 30
    while "HistoryTracker" in kernel.eval(CALLBACKS):  # removed at the next event boundary
        assert time.monotonic() < deadline, "closing the panel left the tracker in the run"
        time.sleep(0.05)
    closed = kernel.mark()
    time.sleep(1.5)
    later = [m.content["data"]["content"] for m in _comm_msgs(kernel, closed, kernel.mark())]
    assert later, "the dashboard stopped publishing"
    assert not any("history" in c for c in later if c.get("type") == "update")
    kernel.execute("run.stop(); run.wait(30)")

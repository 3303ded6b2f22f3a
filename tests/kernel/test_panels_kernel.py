"""The Layers and Batch panels in a real kernel: opened by the browser's ``panel`` command,
they publish at most at their own rate (INSPECT_EVERY_S) within the dashboard's throttle,
and closing them stops both the messages and the run's tracker callback."""

from __future__ import annotations

import time

import pytest
from kernel_harness import Kernel, traffic
from test_dashboard_kernel import _comm_msgs, _payload, show

from luzwidget.widgets.inspector import INSPECT_EVERY_S

pytestmark = pytest.mark.kernel

CALLBACKS = "sorted(type(cb).__name__ for cb in run.ctx.callbacks)"


def test_open_panels_publish_within_the_throttle_and_closing_stops_them(kernel: Kernel) -> None:
    browser = show(kernel)
    snapshot = browser.hello()
    assert (snapshot["layers"], snapshot["batch"]) == ({"open": False}, {"open": False})
    for name in ("layers", "batch"):
        ack = browser.command({"cmd": "panel", "name": name, "open": True})
        assert ack["ok"], ack
    assert {"LayerTracker", "EpochConfusion"} <= set(kernel.eval(CALLBACKS))

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
    layers = [m for m, c in zip(ours, contents, strict=True) if "layers" in c]
    batch = [m for m, c in zip(ours, contents, strict=True) if "batch" in c]
    print(
        f"\npanels open: {traffic(ours).per_second:.1f} messages/s, layers in "
        f"{traffic(layers).per_second:.1f}/s, batch in {traffic(batch).per_second:.1f}/s, "
        f"max {max(map(_payload, ours)):,} B"
    )
    assert traffic(ours).per_second <= 20
    assert len(layers) >= 3  # the panel is live while the run trains...
    assert traffic(layers).per_second <= 1.2 / INSPECT_EVERY_S  # ...at its own rate at most
    assert traffic(batch).per_second <= 1.2 / INSPECT_EVERY_S
    assert max(map(_payload, ours)) < 50_000
    rows = [contents[ours.index(m)]["layers"]["rows"][0] for m in layers]
    assert {row[0] for row in rows} == {"w"}
    # The update norm is recorded while the panel is open (a reading that falls between an
    # optimizer step and its after_step event shows it as not known: None).
    assert any(row[4] is not None for row in rows)

    ack = browser.command({"cmd": "panel", "name": "layers", "open": False})
    assert ack["ok"], ack
    deadline = time.monotonic() + 30
    while "LayerTracker" in kernel.eval(CALLBACKS):  # removed at the next event boundary
        assert time.monotonic() < deadline, "closing the panel left the tracker in the run"
        time.sleep(0.05)
    closed = kernel.mark()
    time.sleep(1.5)  # the run trains on: what does the dashboard send meanwhile?
    later = [m.content["data"]["content"] for m in _comm_msgs(kernel, closed, kernel.mark())]
    assert later, "the dashboard stopped publishing"
    assert not any("layers" in c for c in later if c.get("type") == "update")
    kernel.execute("run.stop(); run.wait(30)")

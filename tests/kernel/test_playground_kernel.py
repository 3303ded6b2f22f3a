"""The Playground panel in a real kernel: open at once for the spiral (two input features), it
publishes its view at most at its own rate (INSPECT_EVERY_S) within the dashboard's throttle,
sends the points once (not with every reading), and closing it stops its messages and takes
its tracker out of the run."""

from __future__ import annotations

import time

import pytest
from kernel_harness import Kernel, traffic
from test_dashboard_kernel import Browser, _comm_msgs, _payload

from luzwidget.widgets.inspector import INSPECT_EVERY_S

pytestmark = pytest.mark.kernel

SPIRAL = """
import time, torch
from torch import nn
import luzwidget as lw

torch.set_num_threads(1)
X, y = lw.datasets.playground("spiral", n=1000, seed=0)
torch.manual_seed(0)
net = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2))
spec = lw.setup(net, loss=nn.CrossEntropyLoss(), optimizer=torch.optim.Adam)
run = spec.set_opt_hparams(lr=0.01).run(
    (X, y), epochs=1000, valid_data=0.2, verbose=False, dataloader_options={"batch_size": 10}
)
t0 = time.monotonic()

def seconds():
    return time.monotonic() - t0

dash = run.dashboard()
display(dash)
print(dash.model_id)
"""

CALLBACKS = "sorted(type(cb).__name__ for cb in run.ctx.callbacks)"


def test_playground_publishes_within_the_throttle(kernel: Kernel) -> None:
    comm_id = kernel.execute(SPIRAL).stdout.strip()
    kernel.wait_comm_open(comm_id)
    browser = Browser(kernel, comm_id)
    snapshot = browser.hello()
    part = snapshot["playground"]
    assert part["open"] is True
    assert part["view"]["kind"] == "classification"
    assert (len(part["train"]["x"]), len(part["valid"]["x"])) == (800, 200)
    assert "PlaygroundTracker" in kernel.eval(CALLBACKS)

    start = kernel.mark()
    kernel.execute("run.start()")
    began = kernel.eval("seconds()")
    deadline = time.monotonic() + 60
    while kernel.eval("seconds()") - began < 3:
        time.sleep(0.25)  # polling interval, not a synchronisation
        assert time.monotonic() < deadline, "the run did not train for 3 s"
    end = kernel.mark()
    ours = [m for m in _comm_msgs(kernel, start, end) if m.content["comm_id"] == comm_id]
    contents = [m.content["data"]["content"] for m in ours]
    views = [m for m, c in zip(ours, contents, strict=True) if "playground" in c]
    sizes = [_payload(m) for m in views]
    print(
        f"\nplayground open: {traffic(ours).per_second:.1f} messages/s, views in "
        f"{traffic(views).per_second:.1f}/s, max {max(sizes):,} B"
    )
    assert traffic(ours).per_second <= 20
    assert len(views) >= 3  # the panel is live while the run trains...
    assert traffic(views).per_second <= 1.2 / INSPECT_EVERY_S  # ...at its own rate at most
    assert max(sizes) < 50_000
    assert not any("train" in c["playground"] for c in contents if "playground" in c)

    ack = browser.command({"cmd": "panel", "name": "playground", "open": False})
    assert ack["ok"], ack
    deadline = time.monotonic() + 30
    while "PlaygroundTracker" in kernel.eval(CALLBACKS):  # out at the next event boundary
        assert time.monotonic() < deadline, "closing the panel left the tracker in the run"
        time.sleep(0.05)
    closed = kernel.mark()
    time.sleep(1.5)  # the run trains on: what does the dashboard send meanwhile?
    later = [m.content["data"]["content"] for m in _comm_msgs(kernel, closed, kernel.mark())]
    assert later, "the dashboard stopped publishing"
    assert not any(c.get("playground", {}).get("view") for c in later)
    kernel.execute("run.stop(); run.wait(30)")

"""A Run in a real kernel: background training, pause from a widget message, Ctrl-C."""

from __future__ import annotations

import time

import pytest
from kernel_harness import Kernel

pytestmark = pytest.mark.kernel

SETUP = """
import time, torch
from torch import nn
import luzwidget as lw

torch.set_num_threads(1)

def make_run(epochs=50, n=4096, seed=0):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 16, generator=g)
    y = x.sum(1, keepdim=True)
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(16, 32), nn.Dropout(0.1), nn.ReLU(), nn.Linear(32, 1))
    spec = lw.setup(net, loss=nn.MSELoss(), optimizer=torch.optim.Adam).set_opt_hparams(lr=1e-3)
    return spec.run((x, y), epochs=epochs, verbose=False)

def weights(model):
    return [p.detach().clone() for p in model.parameters()]
"""


def test_start_returns_at_once_and_cells_run_while_it_trains(kernel: Kernel) -> None:
    kernel.execute(SETUP)
    t0 = time.monotonic()
    kernel.execute("run = make_run(); run.start()")
    assert time.monotonic() - t0 < 5
    first = kernel.eval("[run.state, run.ctx.epoch, run.ctx.iter]")
    time.sleep(0.3)
    second = kernel.eval("[run.state, run.ctx.epoch, run.ctx.iter]")
    assert first[0] == second[0] == "running"
    assert (second[1], second[2] or 0) > (first[1], first[2] or 0)  # it moved on meanwhile
    kernel.execute("run.stop(); run.wait(10)")
    assert kernel.eval("run.state") == "done"
    assert kernel.eval("run.result is not None and run.ctx.epoch < 50")


PAUSE_WIDGET = """
import ipywidgets
pause_button = ipywidgets.ToggleButton(description="Pause")
marks = {}

def on_click(change):
    marks["handled"] = time.monotonic()
    run.pause("paused by the button")

def on_state(r):
    if r.state == "paused":
        marks["paused"] = time.monotonic()
        marks["iter"] = r.ctx.iter

run.add_listener(on_state)
pause_button.observe(on_click, "value")
print(pause_button.model_id)
"""


def test_a_widget_message_pauses_a_background_run(kernel: Kernel) -> None:
    kernel.execute(SETUP)
    kernel.execute("run = make_run(); run.step('batch', n=5)")
    batch_s = kernel.eval(
        "(lambda t: (run.step('batch', n=20), (time.perf_counter() - t) / 20)[1])"
        "(time.perf_counter())"
    )
    comm_id = kernel.execute(PAUSE_WIDGET).stdout.strip()
    kernel.wait_comm_open(comm_id)
    kernel.execute("run.start()")
    time.sleep(0.3)
    assert kernel.eval("run.state") == "running"
    sent = time.monotonic()
    kernel.send_update(comm_id, {"value": True})  # what the browser sends on a click
    deadline = time.monotonic() + 10
    while kernel.eval("run.state") != "paused":
        assert time.monotonic() < deadline, "the run did not pause"
        time.sleep(0.01)
    marks = kernel.eval("marks")
    handled_ms = (marks["handled"] - sent) * 1e3
    paused_ms = (marks["paused"] - sent) * 1e3
    print(
        f"\nclick-to-pause: message handled after {handled_ms:.1f} ms, run paused after "
        f"{paused_ms:.1f} ms (one batch takes {batch_s * 1e3:.2f} ms)"
    )
    assert kernel.eval("run.reason").startswith("paused by the button")
    # The requirement: within ~100 ms plus one batch (generous here: a loaded 2-core machine).
    assert paused_ms < 1000 + batch_s * 1e3
    before = kernel.eval("[run.ctx.epoch, run.ctx.iter]")
    time.sleep(0.2)
    assert kernel.eval("[run.ctx.epoch, run.ctx.iter]") == before  # paused means paused


def test_interrupt_during_blocking_resume_pauses_and_resumes_to_the_same_weights(
    kernel: Kernel,
) -> None:
    kernel.execute(SETUP)
    kernel.execute("ref = make_run(epochs=40); ref.resume(); expected = weights(ref.ctx.model)")
    kernel.execute("run = make_run(epochs=40)")
    msg_id = kernel.submit("run.resume()")
    time.sleep(0.5)
    kernel.interrupt()  # the kernel's Interrupt button: SIGINT to the kernel process
    executed = kernel.collect(msg_id, check=False)
    assert executed.error is None, executed.error  # the cell did not die with KeyboardInterrupt
    state = kernel.eval("[run.state, run.interrupted, run.reason]")
    assert state[0] == "paused", state
    assert state[1], state
    assert "resume" in state[2]
    assert "interrupted" in executed.stderr or "interrupted" in state[2]
    kernel.execute("run.resume()")
    assert kernel.eval("run.state") == "done"
    assert kernel.eval("all(torch.equal(a, b) for a, b in zip(weights(run.ctx.model), expected))")

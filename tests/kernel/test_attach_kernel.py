"""lw.attach from a real kernel: a served script (tests/jobs/serve_job.py) steered from cells and
from the dashboard's comm as a browser drives it; the kernel killed and a new one attached
while training goes on; the script killed and the dashboard shows it disconnected."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from kernel_harness import Kernel
from test_dashboard_kernel import Browser

from tests.jobs.serve_job import Job, wait_until

pytestmark = pytest.mark.kernel

ATTACH = """
import luzwidget as lw
run = lw.attach({address!r}, token={token!r}, timeout=30)
"""

SHOW = """
dash = run.dashboard()
display(dash)
print(dash.model_id)
"""


@pytest.fixture
def job(tmp_path: Path) -> Iterator[Job]:
    j = Job(tmp_path)
    try:
        yield j
    finally:
        j.kill()


def show(kernel: Kernel) -> Browser:
    """Display the attached run's dashboard and say hello as a fresh view does."""
    comm_id = kernel.execute(SHOW).stdout.strip()
    kernel.wait_comm_open(comm_id)
    browser = Browser(kernel, comm_id)
    browser.hello()
    return browser


def test_steer_from_a_kernel_kill_it_and_attach_again_while_training_goes_on(job: Job) -> None:
    with Kernel() as kernel:
        kernel.execute(ATTACH.format(address=job.address, token=job.token))
        kernel.execute("run.pause(); run.wait(30)")
        assert kernel.eval("str(run.state)") == "paused"
        assert kernel.eval("run.step('batch').value") == "on_train_batch_end"
        kernel.execute("run.set_lr(0.05)")
        assert kernel.eval("run.status()['lr']") == {"opt": 0.05}
        refused = kernel.execute("run.set_lr('fast')", check=False).error or ""
        assert "ConfigError" in refused
        kernel.execute("run.resume()")
        assert kernel.eval("str(run.state)") == "running"
        epoch = kernel.eval("run.ctx.epoch")
        pid = kernel.eval("__import__('os').getpid()")
        os.kill(pid, signal.SIGKILL)  # the notebook side dies; the script must not notice
    headless = job.attach()
    try:
        wait_until(lambda: headless.ctx.epoch > epoch + 1, "training to go on")
        assert headless.state == "running"
    finally:
        headless.close()
    with Kernel() as kernel:  # a new kernel picks up the run as it is now
        kernel.execute(ATTACH.format(address=job.address, token=job.token))
        assert kernel.eval("str(run.state)") == "running"
        assert kernel.eval("run.ctx.epoch") > epoch + 1
        assert kernel.eval("run.status()['lr']") == {"opt": 0.05}  # the edit held
        kernel.execute("run.stop(); final = run.wait(60)")  # then the script ends
        assert kernel.eval("str(final)") == "done"


def test_the_dashboard_of_an_attached_run_is_driven_through_its_comm(job: Job) -> None:
    with Kernel() as kernel:
        kernel.execute(ATTACH.format(address=job.address, token=job.token))
        browser = show(kernel)
        browser.wait_state("running")
        ack = browser.command({"cmd": "pause"})
        assert ack["ok"], ack
        browser.wait_state("paused")
        ack = browser.command({"cmd": "edit", "field": "lr", "value": "0.02"})
        assert (ack["ok"], ack["message"]) == (True, "lr set to 0.02"), ack
        ack = browser.command({"cmd": "edit", "field": "lr", "value": "__import__('os')"})
        assert not ack["ok"]
        assert "not a number" in ack["message"]  # parsed, never evaluated
        assert kernel.eval("run.status()['lr']") == {"opt": 0.02}
        ack = browser.command({"cmd": "step", "what": "batch"})
        assert ack["ok"], ack
        browser.wait_state("paused")
        assert kernel.eval("run.event.value") == "on_train_batch_end"
        assert browser.command({"cmd": "start"})["ok"]
        browser.wait_state("running")
        snapshot = browser.hello()  # a second view: a fresh snapshot of the same run
        assert snapshot["config"]["optimizers"][0]["lr"] == "0.02"
        job.proc.kill()  # the script dies: the view says so, every button off
        status = browser.wait_state("disconnected", timeout=60)
        assert not any(status["buttons"].values())
        assert "stopped answering" in status["hint"]
        error = kernel.execute("run.state", check=False).error or ""
        assert "disconnected" in error

"""luzwidget.remote: a served training script (tests/jobs/serve_job.py, a real process) steered
through lw.attach: pause, step, lr edit, resume, stop, retry after an error, a wrong token,
nothing listening, a protocol mismatch, the server killed, a second attach, the updates."""

from __future__ import annotations

import gc
import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

import luzwidget as lw
from luzwidget.remote import client as client_module
from luzwidget.remote.client import Connection
from luzwidget.remote.protocol import AttachError
from tests.jobs.serve_job import Job, wait_until


@pytest.fixture
def job(tmp_path: Path) -> Iterator[Job]:
    j = Job(tmp_path)
    try:
        yield j
    finally:
        j.kill()


@pytest.fixture
def failing_job(tmp_path: Path) -> Iterator[Job]:
    j = Job(tmp_path, fail=True)
    try:
        yield j
    finally:
        j.kill()


def test_a_served_fit_is_paused_stepped_edited_resumed_and_stopped(job: Job) -> None:
    run = job.attach()
    try:
        wait_until(lambda: run.state == "running", "the run to train")
        run.pause()
        assert run.wait(30) == "paused"
        assert "paused from a notebook" in run.reason
        assert run.step("batch") == lw.Event.on_train_batch_end
        assert run.state == "paused"  # the script's fit() waits, it does not drive on
        run.set_lr(0.05)
        assert run.status()["lr"] == {"opt": 0.05}
        with pytest.raises(lw.ConfigError, match="finite positive"):
            run.set_lr(-1)  # the Run API's own check, answered as a refusal
        with pytest.raises(lw.ConfigError, match="code"):
            run.edit("loss_fn", "print")
        run.breakpoints.add("epoch_end")
        assert lw.Event.on_epoch_end in run.breakpoints.events
        run.resume()
        assert run.wait(60) == "paused"
        assert run.event == lw.Event.on_epoch_end
        run.breakpoints.clear()
        epoch = run.ctx.epoch
        assert isinstance(epoch, int)
        assert "Tiny" in run.ctx.model  # a module crosses as its summary
        assert set(run.layers()["name"]) == {"w"}
        assert run.history.epochs("train") >= 1
        run.resume()
        wait_until(lambda: run.ctx.epoch > epoch, "training to go on")
        run.stop()
        assert run.wait(60) == "done"
        wait_until(lambda: (job.out / "done").exists(), "fit() to return in the script")
    finally:
        run.close()


def test_an_error_waits_for_a_retry_from_the_notebook(failing_job: Job) -> None:
    run = failing_job.attach()
    try:
        wait_until(lambda: run.state == "error", "the injected error")
        assert "boom at batch 5" in (run.error or "")
        with pytest.raises(lw.RunStateError):
            run.resume()  # as locally: retry or skip first
        (failing_job.out / "fail").unlink()  # the fix
        run.retry()
        wait_until(lambda: run.ctx.epoch >= 3, "the retried run to train on")
        assert run.state == "running"
        run.stop()
        assert run.wait(60) == "done"
    finally:
        run.close()


def test_a_second_attach_sees_the_current_state_and_training_went_on(job: Job) -> None:
    first = job.attach()
    wait_until(lambda: first.state == "running", "the run to train")
    epoch = first.ctx.epoch
    first.close()  # the notebook goes away: the run does not notice
    with pytest.raises(AttachError, match="closed"):
        first.status()
    second = job.attach()
    try:
        wait_until(lambda: second.ctx.epoch > epoch, "training to go on")
        second.pause()
        assert second.wait(30) == "paused"
        third = job.attach()  # several notebooks at once: each sees the same run
        assert third.state == "paused"
        third.close()
    finally:
        second.close()


def test_updates_are_the_dashboards_messages_and_do_not_grow(job: Job) -> None:
    conn = Connection(job.address, job.token, 20)
    got: list[tuple[int, dict[str, Any]]] = []
    conn.on_update.append(lambda m: got.append((len(json.dumps(m)), m)))
    try:
        conn.hello()
        conn.subscribed = True
        conn.send({"op": "subscribe"})
        wait_until(lambda: len(got) > 40, "40 updates")
        assert got[0][1]["type"] == "snapshot"
        deltas = [n for n, m in got[1:] if m["type"] == "update"]
        early, late = deltas[:10], deltas[-10:]
        assert max(late) < 4 * max(early) + 2000  # a delta holds what changed, not the run
        conn.send({"op": "dash", "content": {"cmd": "pause", "id": "x1"}})
        acked = wait_until(
            lambda: [a for _, m in got for a in m.get("acks", []) if a["id"] == "x1"], "the ack"
        )
        assert acked[0]["ok"], acked
    finally:
        conn.close()


def test_a_wrong_or_missing_token_is_refused_and_gets_no_state(job: Job) -> None:
    with pytest.raises(AttachError, match="refused the token"):
        lw.attach(job.address, token="not-the-token", timeout=20)
    with pytest.raises(AttachError, match="token is missing"):
        lw.attach(job.address, timeout=20)
    with pytest.raises(AttachError, match="token must be text"):
        lw.attach(job.address, token="\ud800", timeout=20)  # no UTF-8: refused here
    with zmq.Context() as ctx, ctx.socket(zmq.DEALER) as sock:  # a raw client, no token
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(f"tcp://{job.address}")
        sock.send_json({"op": "call", "method": "status", "args": {}, "id": 1})
        assert not sock.poll(3000)  # the handshake refused it: nothing comes back, ever
    job.attach().close()  # the server is none the worse


def test_dropping_an_attached_proxy_releases_its_connection(job: Job) -> None:
    def attach_threads() -> int:
        return sum(t.name == "luzwidget-attach" for t in threading.enumerate())

    before = attach_threads()
    run = job.attach()
    assert attach_threads() == before + 1
    del run
    gc.collect()
    wait_until(lambda: attach_threads() == before, "the connection's thread to end", 10)


def test_a_protocol_mismatch_is_refused(job: Job, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "PROTOCOL", 999)
    with pytest.raises(AttachError, match="protocol 2 and this luzwidget speaks 999"):
        job.attach()


def test_nothing_listening_is_an_error_within_the_timeout() -> None:
    with zmq.Context() as ctx, ctx.socket(zmq.ROUTER) as sock:
        port = sock.bind_to_random_port("tcp://127.0.0.1")
    with pytest.raises(AttachError, match="nothing answered"):
        lw.attach(f"127.0.0.1:{port}", token="whatever-token", timeout=1)


def test_a_server_of_protocol_1_is_told_apart_from_silence() -> None:
    with zmq.Context() as ctx, ctx.socket(zmq.ROUTER) as sock:  # no PLAIN: as protocol 1 was
        port = sock.bind_to_random_port("tcp://127.0.0.1")
        with pytest.raises(AttachError, match="does not speak attach protocol 2"):
            lw.attach(f"127.0.0.1:{port}", token="whatever-token", timeout=20)
        assert not sock.poll(0)  # and it never got the hello


def test_a_killed_server_shows_as_disconnected(job: Job) -> None:
    run = job.attach()
    try:
        wait_until(lambda: run.state == "running", "the run to train")
        job.proc.kill()
        wait_until(lambda: not run.connected, "the proxy to notice")
        with pytest.raises(AttachError, match="disconnected"):
            run.status()
        assert "disconnected" in repr(run)
    finally:
        run.close()


def test_a_server_loads_no_widget_library() -> None:
    code = (
        "import sys, luzwidget.remote.server, luzwidget.remote.proxy\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'anywidget', 'ipywidgets', 'IPython'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_luzwidget_serve_in_the_environment_adds_a_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    from luzwidget.callbacks.serve import Serve, serve_from_env

    monkeypatch.delenv("LUZWIDGET_SERVE", raising=False)
    assert serve_from_env([]) == []
    monkeypatch.setenv("LUZWIDGET_SERVE", "8765")
    monkeypatch.setenv("LUZWIDGET_SERVE_TOKEN", "a-token-of-mine")
    (serve,) = serve_from_env([])
    assert isinstance(serve, Serve)
    assert (serve.address, serve.token) == ("127.0.0.1:8765", "a-token-of-mine")
    assert serve_from_env([serve]) == [serve]  # one is there already
    monkeypatch.setenv("LUZWIDGET_SERVE", "nope")
    with pytest.raises(lw.ConfigError, match="LUZWIDGET_SERVE"):
        serve_from_env([])


def test_serve_checks_its_arguments() -> None:
    with pytest.raises(lw.ConfigError, match="port"):
        lw.callbacks.Serve(port=-1)
    with pytest.raises(lw.ConfigError, match="token"):
        lw.callbacks.Serve(token="short")
    assert len(lw.callbacks.Serve().token) >= 24  # generated when not given


def test_a_paused_served_fit_is_stopped_from_the_notebook(job: Job) -> None:
    run = job.attach()
    try:
        run.pause()
        assert run.wait(30) == "paused"
        run.stop()  # the script's fit() was waiting: it ends as luz's does and returns
        wait_until(lambda: (job.out / "done").exists(), "fit() to return in the script")
        assert "waiting for an attached notebook" in (job.out / "log").read_text()
    finally:
        run.close()


def test_a_network_that_drops_and_comes_back_reconnects(job: Job) -> None:
    run = job.attach()
    try:
        wait_until(lambda: run.state == "running", "the run to train")
        job.proc.send_signal(signal.SIGSTOP)  # the server goes silent, as behind a dead link
        try:
            wait_until(lambda: not run.connected, "the proxy to notice")
            with pytest.raises(AttachError, match="disconnected"):
                run.pause()
        finally:
            job.proc.send_signal(signal.SIGCONT)
        wait_until(lambda: run.connected, "the link to come back")
        assert run.state == "running"  # it never stopped training for us
    finally:
        run.close()

"""luzwidget under torch.distributed: real torchrun launches, 2 processes, gloo on 127.0.0.1.

Each test starts ``python -m torch.distributed.run`` on tests/dist_job.py in its own process
group, bounded by a timeout, and kills that group in a ``finally``: no process outlives it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

pytestmark = pytest.mark.distributed

ROOT = Path(__file__).resolve().parent.parent
JOB = str(ROOT / "tests" / "dist_job.py")
LIMIT_S = 150


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def launch(args: list[str], *extra: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "torch.distributed.run", *extra, JOB, *args]
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: killed whole in finish()
    )


def finish(procs: list[subprocess.Popen[str]]) -> list[tuple[int, str]]:
    """Wait (bounded) for every launcher; kill each one's process group whatever happens."""
    results = []
    try:
        for proc in procs:
            out, _ = proc.communicate(timeout=LIMIT_S)
            results.append((proc.returncode, out))
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    return results


def torchrun(args: list[str], *extra: str) -> tuple[int, str]:
    single = ["--nproc_per_node=2", "--master_addr=127.0.0.1", f"--master_port={free_port()}"]
    return finish([launch(args, *single, *extra)])[0]


def load(out: Path, rank: int) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    return (
        json.loads((out / f"rank{rank}.json").read_text()),
        torch.load(out / f"rank{rank}.pt", weights_only=True),
    )


def one_process(mode: str, out: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    out.mkdir()
    done = subprocess.run(
        [sys.executable, JOB, mode, str(out)], cwd=ROOT, env=env(), timeout=LIMIT_S, check=False
    )
    assert done.returncode == 0
    return load(out, 0)


def assert_records_close(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    for set_ in a:
        assert len(a[set_]) == len(b[set_])
        for x, y in zip(a[set_], b[set_], strict=True):
            assert x.keys() == y.keys()
            for name in x:
                assert x[name] == pytest.approx(y[name], rel=1e-5), (set_, name)


def test_two_processes_train_as_one_on_the_same_global_batches(tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    out.mkdir()
    code, log = torchrun(["train", str(out)])
    assert code == 0, log
    (r0, w0), (r1, w1) = load(out, 0), load(out, 1)
    assert (r0["ddp"], r0["ctx_rank"], r1["ctx_rank"], r0["ctx_world_size"]) == (
        "DistributedDataParallel",
        0,
        1,
        2,
    )
    for name in w0:  # DDP: the same weights on both ranks, bit for bit
        assert torch.equal(w0[name], w1[name])
    assert r0["records"] == r1["records"]  # global records, the same on every rank
    single, w_single = one_process("train", tmp_path / "one")
    assert (single["ddp"], single["ctx_world_size"]) == ("Linear", 1)
    for name in w0:
        assert torch.allclose(w0[name], w_single[name], atol=1e-6)
    assert_records_close(r0["records"], single["records"])
    assert len(r0["lrs"]) == 3 * 4  # each rank trained on its shard: 32 samples, 4 batches


def test_a_pause_and_an_lr_edit_posted_on_rank_0_apply_at_one_boundary_on_both(
    tmp_path: Path,
) -> None:
    code, log = torchrun(["steer", str(tmp_path)])
    assert code == 0, log
    (r0, w0), (r1, w1) = load(tmp_path, 0), load(tmp_path, 1)
    # posted at epoch 1, batch 1 (on_train_batch_end); applied at the next poll batch >= 3
    applied = [1, "on_train_batch_begin", 1, 4]
    stepped = [1, "on_train_batch_end", 1, 4]  # run.step("batch") on rank 0: both stop there
    assert r0["seen"] == r1["seen"] == [applied, stepped]
    assert r0["paused"] == [
        "paused by the test after on_train_batch_begin (epoch 1, batch 4)",
        1,
        4,
    ]
    assert r0["stepped"][1:] == [1, 4]
    lrs = [lr for _, _, lr in r0["lrs"]]
    assert lrs == [lr for _, _, lr in r1["lrs"]] == [0.1] * 3 + [0.05] * 9  # from step 4 on
    for name in w0:
        assert torch.equal(w0[name], w1[name])
    assert r0["records"] == r1["records"]


def test_an_error_on_rank_1_is_reported_on_rank_0_and_nothing_hangs(tmp_path: Path) -> None:
    code, log = torchrun(["error", str(tmp_path)])
    assert code != 0
    said = [line for line in log.splitlines() if "rank 1 of 2 failed" in line]  # rank 0's watcher
    assert said, log
    assert "planted on rank 1" in said[0]
    assert "Watch.on_train_batch_end" in said[0]  # the callback and the event, named


def test_kill_9_of_rank_1_resumes_and_ends_as_an_uninterrupted_run(tmp_path: Path) -> None:
    out, again = tmp_path / "killed", tmp_path / "plain"
    out.mkdir()
    again.mkdir()
    code, log = torchrun(["kill", str(out), str(tmp_path / "state.pt")], "--max-restarts=1")
    assert code == 0, log
    assert "SIGKILL" in log or "Signals.SIGKILL" in log or "-9" in log, log  # it did die once
    code, log = torchrun(["train", str(again)])
    assert code == 0, log
    (killed, w_killed), (plain, w_plain) = load(out, 0), load(again, 0)
    for name in w_plain:
        assert torch.equal(w_killed[name], w_plain[name])
    assert killed["records"] == plain["records"]
    assert not (tmp_path / "state.pt").exists()  # the fit ended: rank 0 removed the file


def test_two_launchers_as_two_nodes_on_127_0_0_1(tmp_path: Path) -> None:
    port = free_port()
    common = [
        "--nnodes=2",
        "--nproc_per_node=1",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint=127.0.0.1:{port}",
        "--rdzv-id=luzwidget-test",
    ]
    procs = [launch(["train", str(tmp_path)], *common, f"--node-rank={n}") for n in (0, 1)]
    results = finish(procs)
    assert [code for code, _ in results] == [0, 0], results
    (r0, w0), (r1, w1) = load(tmp_path, 0), load(tmp_path, 1)
    assert r0["ctx_world_size"] == r1["ctx_world_size"] == 2
    for name in w0:
        assert torch.equal(w0[name], w1[name])
    assert r0["records"] == r1["records"]

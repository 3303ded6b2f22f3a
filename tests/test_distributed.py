"""luzwidget under torch.distributed: real torchrun launches, 2 processes, gloo on 127.0.0.1.

Each test starts ``python -m torch.distributed.run`` on tests/dist_job.py in its own process
group, bounded by a timeout, and kills that group in a ``finally``: no process outlives it.
"""

from __future__ import annotations

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
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
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
    assert single["ddp"] == "Linear" and single["ctx_world_size"] == 1
    for name in w0:
        assert torch.allclose(w0[name], w_single[name], atol=1e-6)
    assert_records_close(r0["records"], single["records"])
    assert len(r0["lrs"]) == 3 * 4  # each rank trained on its shard: 32 samples, 4 batches

"""The sentinel's rank_drift check under torchrun: 2 processes, gloo on 127.0.0.1, each
launch bounded by a timeout and its process group killed after (as test_distributed.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.parallel.test_distributed import ROOT, finish, free_port

pytestmark = pytest.mark.distributed

JOB = str(ROOT / "tests" / "jobs" / "drift_job.py")


def test_a_rank_whose_weights_drift_apart_pauses_every_rank_naming_the_parameter(
    tmp_path: Path,
) -> None:
    import subprocess

    from tests.parallel.test_distributed import env

    single = ["--nproc_per_node=2", "--master_addr=127.0.0.1", f"--master_port={free_port()}"]
    command = [sys.executable, "-m", "torch.distributed.run", *single, JOB, str(tmp_path)]
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )  # fmt: skip
    ((code, log),) = finish([proc])
    assert code == 0, log
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["state"] == "paused"  # rank 1 waited there with it, then went on in step
    assert r0["reason"].startswith("sentinel rank_drift: the ranks' weights differ (first: weight)")
    assert ", then every rank paused after " in r0["reason"]  # at a boundary they agreed on
    # found after the next step (batch 3), on both ranks; rank 0 pauses them all
    assert r0["findings"] == r1["findings"] == [["rank_drift", "weight", 1, 3]]
    assert r0["end"] == r1["end"] == "done"

"""luzwidget.launch: ``run(accelerator=Accelerator(processes=2))`` spawns 2 workers (gloo,
127.0.0.1) and returns their proxy. Every launch is closed in a ``finally`` and any pid
still alive is killed: no worker outlives a test.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

import luzwidget as lw
from luzwidget import launch as launch_module
from luzwidget.core.exceptions import ConfigError
from tests.jobs import launch_model as m

pytestmark = pytest.mark.distributed

ROOT = Path(__file__).resolve().parent.parent
BOUND_S = 120.0


def gone(pids: list[int], within: float = 30.0) -> bool:
    """True once no process in ``pids`` runs (zombies count as gone), polling ``within`` s."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        alive = [p for p in pids if psutil.pid_exists(p) and not _zombie(p)]
        if not alive:
            return True
        time.sleep(0.1)
    return False


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def kill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def launched(tmp_path: Path) -> Iterator[Any]:
    """A factory of launches; each is closed, and its pids killed, at the end."""
    runs: list[Any] = []

    def make(*callbacks: Any, epochs: int = 30) -> Any:
        run = m.spec().run(
            m.data(64, 0),
            epochs=epochs,
            valid_data=m.data(32, 1),
            callbacks=[m.Report(str(tmp_path)), *callbacks],
            verbose=False,
            dataloader_options={"batch_size": 8, "shuffle": False},
            accelerator=lw.Accelerator(processes=2, cpu=True),
        )
        runs.append(run)
        return run

    try:
        yield make
    finally:
        for run in runs:
            pids = run.pids
            run.close()
            kill(pids)


def ranks(folder: Path) -> list[dict[str, Any]]:
    return [json.loads((folder / f"rank{r}.json").read_text()) for r in (0, 1)]


def test_start_pause_set_lr_resume_to_the_end(launched: Any, tmp_path: Path) -> None:
    run = launched(m.Slow())
    assert isinstance(run, launch_module.Launched)
    assert len(run.pids) == 2
    assert run.state == "ready"
    run.start()
    run.pause("paused by the test")
    assert run.wait(BOUND_S) == "paused"
    run.set_lr(0.05)
    run.resume()
    assert run.wait(BOUND_S) == "done"
    assert run.status()["lr"] == {"opt": 0.05}
    zero, one = ranks(tmp_path)
    assert zero["records"] == one["records"] == run.records["metrics"]
    assert len(run.records["metrics"]["train"]) == 30
    assert zero["lrs"] == one["lrs"]  # the new lr from the same batch on every rank
    assert zero["lrs"][0] == 0.1
    assert zero["lrs"][-1] == 0.05
    pids = run.pids
    run.stop()  # done already: the workers end
    assert gone(pids)
    assert run.state == "done"  # kept from the last read


def test_stop_ends_the_run_and_the_workers(launched: Any, tmp_path: Path) -> None:
    run = launched(m.Slow(), epochs=1000)
    run.start()
    pids = run.pids
    run.stop()
    assert gone(pids)
    assert not run.alive
    assert run.state == "done"
    assert len(ranks(tmp_path)[0]["records"].get("train", [])) < 1000  # on_fit_end ran


def test_an_error_in_a_worker_is_reported_and_leaves_nothing(launched: Any) -> None:
    run = launched(m.Boom())
    run.start()
    assert run.wait(BOUND_S) == "error"
    assert "planted on rank 1" in (run.error or "")  # rank 0 stopped: rank 1 failed
    pids = run.pids
    assert "ValueError: planted on rank 1" in run.worker_errors()[1]
    run.stop()  # in error: nothing to stop there, the workers end all the same
    assert gone(pids)
    assert run.error is not None  # kept from the last read
    assert run.error.startswith("rank 1 failed: ")
    assert "planted on rank 1" in run.error


def _held() -> tuple[list[str], int, int]:
    """This process's luzwidget threads, OS threads and open file handles."""
    me = psutil.Process()
    names = sorted(t.name for t in threading.enumerate() if t.name.startswith("luzwidget"))
    return names, me.num_threads(), me.num_fds()


def _launch(epochs: int = 5, spec: Any = None) -> Any:
    return (spec or m.spec()).run(
        m.data(64, 0),
        epochs=epochs,
        verbose=False,
        accelerator=lw.Accelerator(processes=2, cpu=True),
    )


def test_dropping_the_proxy_ends_the_workers_and_releases_every_thread_and_handle() -> None:
    """Before: after ``del proxy; gc.collect()`` the attach thread and its zmq context stayed
    (3 OS threads, 9 file handles)."""
    first = _launch()  # everything warmed up (imports, torch's own helpers)
    pids = first.pids
    try:
        del first
        gc.collect()
        assert gone(pids)
        baseline = _held()  # what a launch dropped leaves (the test: nothing more each time)
        run = _launch()
        pids = run.pids
        finalizer = run._finalizer  # what garbage collection runs
        assert _held() != baseline  # the connection's thread, context and handles, now
        del run
        gc.collect()
        assert not finalizer.alive
        assert gone(pids)
        deadline = time.monotonic() + 10
        while _held() != baseline and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _held() == baseline
    finally:
        kill(pids)


def test_a_launch_from_a_thread_that_ends_keeps_its_workers() -> None:
    """Before: torch ties each worker's death signal to the thread that started it, so both
    workers died when the launching thread returned."""
    box: list[Any] = []
    thread = threading.Thread(target=lambda: box.append(_launch(epochs=3)))
    thread.start()
    thread.join(BOUND_S)
    assert box, "the launch did not return"
    run = box[0]
    pids = run.pids
    try:
        time.sleep(2)  # the death signal, were it tied to that thread, has landed by now
        assert run.alive
        run.start()
        assert run.wait(BOUND_S) == "done"
    finally:
        run.close()
        kill(pids)
    assert gone(pids)


def test_a_rank_failing_before_rank_0_serves_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: torch's pytorch-errorfile-*.pickle of the failed rank stayed behind."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # torch's error files go here too
    before = set(threading.enumerate())
    with pytest.raises(launch_module.LaunchError, match="rank 1 cannot build the model"):
        _launch(spec=m.spec(m.FailsOnRank1))
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert [t.name for t in set(threading.enumerate()) - before] == []  # the launcher's ended


PARENT = """
import sys, time
sys.path.insert(0, {root!r})
import luzwidget as lw
from tests.jobs import launch_model as m
if __name__ == "__main__":
    run = m.spec().run(m.data(64, 0), epochs=5, verbose=False,
                       accelerator=lw.Accelerator(processes=2, cpu=True))
    print(*run.pids, flush=True)
    time.sleep(600)
"""


def test_workers_exit_when_their_parent_is_killed_and_remove_its_folder(tmp_path: Path) -> None:
    """Before: the workers exited, but the folder with the run's address stayed."""
    script = tmp_path / "parent.py"
    script.write_text(PARENT.format(root=str(ROOT)))
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TMPDIR": str(temp)}
    parent = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env
    )
    pids: list[int] = []
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()  # bounded by the launch's own timeout
        pids = [int(p) for p in line.split()]
        assert len(pids) == 2
        assert [p.name for p in temp.iterdir() if p.name.startswith("luzwidget-launch-")]
        parent.kill()
        parent.wait(10)
        assert gone(pids, within=60.0)
        ours = ("luzwidget-launch-", "pytorch-errorfile-")  # torch's inductor cache may stay
        assert [p.name for p in temp.iterdir() if p.name.startswith(ours)] == []
    finally:
        parent.kill()
        parent.wait(10)
        kill(pids)


def test_fit_with_processes_points_to_run() -> None:
    with pytest.raises(ConfigError, match="use run"):
        m.spec().fit(m.data(8, 0), epochs=1, accelerator=lw.Accelerator(processes=2, cpu=True))


def test_a_notebook_class_is_refused_without_cloudpickle(monkeypatch: pytest.MonkeyPatch) -> None:
    class Net(m.nn.Linear):
        pass

    Net.__module__ = "__main__"
    main = type(sys)("__main__")  # an interactive __main__: no __file__
    monkeypatch.setitem(sys.modules, "__main__", main)
    with pytest.raises(ConfigError, match=r"\.py file"):
        launch_module._plain_dumps({"spec": lw.setup(Net)})
    assert launch_module._plain_dumps({"spec": m.spec()})  # importable: pickles

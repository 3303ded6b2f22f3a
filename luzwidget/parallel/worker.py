"""A worker launched from a notebook cell (``Accelerator(processes=N)``, see
:mod:`luzwidget.launch`): torchrun's environment, the same run as the others; rank 0
serves it to the notebook, the others follow rank 0.

The spawned processes import this module by name, so it holds only what they run.
"""

from __future__ import annotations

import os
import pickle
import shutil
import threading
import time
from pathlib import Path

from luzwidget.core.states import RunState

__all__ = ["PARENT_POLL_S", "worker"]

PARENT_POLL_S = 0.5
"""How often a worker checks that its parent is alive."""


def worker(index: int, payload: bytes, size: int, port: int, folder: str, parent: int) -> None:
    """One worker: torchrun's environment, the same run as the others; rank 0 serves it.

    Once the parent is gone (its death signal, or :func:`_watch_parent`), the worker removes
    the private folder on its way out: nobody else is left to. An error raised then (another
    rank gone first: its store's connection reset) ends the worker at once, without a
    traceback: torch's spawn would write it to an error file nobody is left to read or remove.
    """
    threading.Thread(target=_watch_parent, args=(parent, folder), daemon=True).start()
    try:
        _work(index, payload, size, port, folder)
    except Exception:
        if os.getppid() != parent:  # orphaned: leave nothing behind
            shutil.rmtree(folder, ignore_errors=True)
            os._exit(1)
        raise
    finally:
        if os.getppid() != parent:
            shutil.rmtree(folder, ignore_errors=True)


def _work(index: int, payload: bytes, size: int, port: int, folder: str) -> None:
    os.environ.update(
        RANK=str(index),
        WORLD_SIZE=str(size),
        LOCAL_RANK=str(index),
        LOCAL_WORLD_SIZE=str(size),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // size))
    from luzwidget.callbacks.serve import Serve
    from luzwidget.core.accelerator import Accelerator

    job = pickle.loads(payload)
    kwargs = dict(job["kwargs"], accelerator=Accelerator(**job["accelerator"]))
    serve = Serve(port=0, token=job["token"]) if index == 0 else None
    if serve is not None:
        kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), serve]
    run = job["spec"].run(job["data"], job["epochs"], **kwargs)
    if serve is not None:
        serve.on_fit_begin(run.ctx)  # serve now: the notebook starts the run
        tmp = Path(folder) / "address.tmp"
        tmp.write_text(serve.address)
        tmp.replace(Path(folder) / "address")
        while True:  # the server's thread drives the run; the parent ends this process
            time.sleep(1.0)
    run.resume()  # the other ranks follow rank 0, event by event where it pauses
    while run.state == RunState.PAUSED:
        run.resume()
    if run.state == RunState.ERROR:
        raise run.error


def _watch_parent(parent: int, folder: str) -> None:
    """Exit this worker once the process that launched it is gone (its folder with it)."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    shutil.rmtree(folder, ignore_errors=True)
    os._exit(1)

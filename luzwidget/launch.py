"""Data-parallel training launched from a notebook cell: ``Accelerator(processes=N)``.

``setup(...).run(data, accelerator=Accelerator(processes=2))`` in a process that is not
itself a worker (no ``WORLD_SIZE``) starts N workers on this machine with torch's own
launcher (``torch.multiprocessing.start_processes``, the ``spawn`` method), each with the
environment torchrun would give it (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR=127.0.0.1``, a free ``MASTER_PORT``). Every worker builds the same run (see
:mod:`luzwidget.parallel.lockstep`); rank 0 serves it (:class:`~luzwidget.callbacks.Serve`, a random
token, a free port on 127.0.0.1) and writes its address to a private folder. The parent
returns :class:`Launched`: the :class:`~luzwidget.remote.proxy.Attached` proxy of that run,
which also owns the workers.

What the workers need crosses pickled (with cloudpickle when it is installed, so classes
defined in a notebook cell travel by value; without it such classes must live in a .py
file). Workers never outlive their launcher: ``stop()``, ``close()``, garbage collection
and the interpreter's exit end them (and release the proxy's connection, thread and
handles), and each worker exits by itself once its parent died, removing the private folder.

The workers are started from a thread of their own that lives until they are ended: torch
asks the kernel to signal a worker when the *thread* that started it ends
(``PR_SET_PDEATHSIG``), so a launch from a short-lived thread (a callback, a thread pool)
would otherwise kill both workers as soon as that thread returned.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import secrets
import shutil
import socket
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from luzwidget.core.exceptions import ConfigError, LuzwidgetError, RunStateError
from luzwidget.core.states import RunState
from luzwidget.parallel.worker import worker
from luzwidget.remote.client import Connection
from luzwidget.remote.protocol import AttachError
from luzwidget.remote.proxy import Attached

__all__ = ["LaunchError", "Launched", "launch"]

START_TIMEOUT_S = 300.0
"""How long the parent waits for rank 0 to serve (imports, the process group, the data)."""


class LaunchError(LuzwidgetError, RuntimeError):
    """The workers could not be started, or one failed before the run was served."""


def launch(spec: Any, data: Any, epochs: Any, kwargs: dict[str, Any], processes: int) -> Launched:
    """Start ``processes`` workers training ``spec`` on ``data``; return the run's proxy.

    Raises
    ------
    ConfigError
        What the workers need cannot be pickled (e.g. a class defined in a notebook cell,
        without cloudpickle installed).
    LaunchError
        A worker failed before rank 0 served the run, or it took over ``START_TIMEOUT_S``.
    """
    accelerator = kwargs["accelerator"]
    token = secrets.token_urlsafe(24)
    job = {
        "spec": spec,
        "data": data,
        "epochs": epochs,
        "kwargs": {k: v for k, v in kwargs.items() if k != "accelerator"},
        "accelerator": accelerator.options,
        "token": token,
    }
    payload = dumps(job)
    folder = Path(tempfile.mkdtemp(prefix="luzwidget-launch-"))
    args = (payload, processes, _free_port(), str(folder), os.getpid())
    try:
        spawner = _Spawner(args, processes)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    context = spawner.context
    procs, error_files = list(context.processes), list(context.error_files)
    try:
        address = _wait_for_address(context, folder)
        conn = Connection(address, token, 10.0)
        conn.hello()
    except BaseException:
        _end(procs, str(folder), error_files, None, spawner)
        raise
    return Launched(conn, procs, str(folder), error_files, spawner)


class _Spawner:
    """Starts the workers (torch's ``start_processes``) from a thread that lives until
    :meth:`release`: each worker's parent-death signal is tied to that thread."""

    def __init__(self, args: tuple[Any, ...], processes: int) -> None:
        self.context: Any = None
        self._error: BaseException | None = None
        self._started, self._released = threading.Event(), threading.Event()
        self.thread = threading.Thread(
            target=self._run, args=(args, processes), daemon=True, name="luzwidget-launcher"
        )
        self.thread.start()
        self._started.wait()
        if self._error is not None:
            self.thread.join()
            raise self._error

    def _run(self, args: tuple[Any, ...], processes: int) -> None:
        from torch.multiprocessing.spawn import start_processes

        try:
            self.context = start_processes(
                worker, args=args, nprocs=processes, join=False, start_method="spawn"
            )
        except BaseException as exc:
            self._error = exc
            return
        finally:
            self._started.set()
        self._released.wait()

    def release(self) -> None:
        """End the thread (the workers were ended first: nothing is left to signal)."""
        self._released.set()
        if self.thread is not threading.current_thread():
            self.thread.join(5.0)


def dumps(job: dict[str, Any]) -> bytes:
    """``job`` pickled for spawned workers (cloudpickle when installed)."""
    try:
        import cloudpickle  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        return _plain_dumps(job)
    try:
        return bytes(cloudpickle.dumps(job))
    except Exception as exc:
        raise ConfigError(_unpicklable(exc)) from exc


def _plain_dumps(job: dict[str, Any]) -> bytes:
    import io

    buffer = io.BytesIO()
    try:
        _MainChecker(buffer).dump(job)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(_unpicklable(exc)) from exc
    return buffer.getvalue()


class _MainChecker(pickle.Pickler):
    """Pickles as usual; refuses what lives in an interactive ``__main__`` (a notebook)."""

    def reducer_override(self, obj: Any) -> Any:
        main = sys.modules.get("__main__")
        module = getattr(obj, "__module__", None)
        interactive = module == "__main__" and not getattr(main, "__file__", None)
        if interactive and (isinstance(obj, type) or callable(obj)):
            raise ConfigError(
                f"Accelerator(processes=...): {getattr(obj, '__qualname__', obj)!r} is "
                "defined in the notebook (__main__), which the worker processes cannot "
                "import. Define it in a .py file next to the notebook and import it from "
                "there, or install cloudpickle (pip install cloudpickle)."
            )
        return NotImplemented


def _unpicklable(exc: BaseException) -> str:
    return (
        f"Accelerator(processes=...): the setup, data or callbacks cannot be sent to the "
        f"worker processes ({type(exc).__name__}: {exc}). Everything passed to run() must "
        "pickle: define models, losses and callbacks in a .py file, and pass data as "
        "tensors, datasets or DataLoaders (no open files or lambdas)."
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_address(context: Any, folder: Path) -> str:
    deadline = time.monotonic() + START_TIMEOUT_S
    target = folder / "address"
    while not target.exists():
        try:
            ended = context.join(timeout=0.2)
        except Exception as exc:  # a worker raised or died: torch's message has its traceback
            raise LaunchError(f"a worker failed before the run was served:\n{exc}") from exc
        if ended:
            raise LaunchError("the workers ended before the run was served.")
        if time.monotonic() > deadline:
            raise LaunchError(
                f"rank 0 did not serve the run within {START_TIMEOUT_S:.0f} s; the workers "
                "were ended."
            )
    return target.read_text().strip()


def _end(
    procs: list[Any],
    folder: str,
    error_files: list[str],
    conn: Connection | None,
    spawner: _Spawner | None,
) -> None:
    """Close the connection, end every worker still alive (SIGTERM, then SIGKILL), end the
    thread that started them, remove the folder and torch's error files."""
    if conn is not None:
        conn.close()
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    deadline = time.monotonic() + 5.0
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            proc.kill()
            proc.join(5.0)
    if spawner is not None:
        spawner.release()
    shutil.rmtree(folder, ignore_errors=True)
    for path in error_files:
        with contextlib.suppress(OSError):
            os.unlink(path)


class Launched(Attached):
    """The proxy of a run launched with ``Accelerator(processes=N)``; it owns the workers.

    Everything :class:`~luzwidget.remote.proxy.Attached` does, plus: :meth:`stop` ends the
    run and then the workers; :meth:`close` ends the workers at once. Afterwards
    ``state``, ``status()`` and ``records`` keep what was last read.
    """

    def __init__(
        self,
        conn: Connection,
        procs: list[Any],
        folder: str,
        error_files: list[str],
        spawner: _Spawner | None = None,
    ) -> None:
        super().__init__(conn)
        self._procs = procs
        self._error_files = error_files
        self._errors: dict[int, str] = {}
        self._finalizer = weakref.finalize(  # garbage collection, and the exit too
            self, _end, procs, folder, error_files, conn, spawner
        )
        self._last: dict[str, Any] = {}

    @property
    def pids(self) -> list[int]:
        """The workers' process ids, rank 0 first."""
        return [int(p.pid) for p in self._procs]

    @property
    def alive(self) -> bool:
        """True while any worker process runs."""
        return any(p.is_alive() for p in self._procs)

    def worker_errors(self) -> dict[int, str]:
        """The traceback of each worker that raised, by rank (torch's error files)."""
        if not self._finalizer.alive:
            return dict(self._errors)  # read before the files went with the workers
        for rank, path in enumerate(self._error_files):
            with (
                contextlib.suppress(OSError, EOFError, pickle.UnpicklingError),
                open(path, "rb") as fh,
            ):
                self._errors[rank] = str(pickle.load(fh))  # written by torch's _wrap, here
        return dict(self._errors)

    @property
    def error(self) -> str | None:
        """Rank 0's error; with the error of the worker that failed first, when another did."""
        error = super().error
        others = {r: e for r, e in self.worker_errors().items() if r != 0}
        if error is None or not others:
            return error
        rank, trace = min(others.items())
        last = trace.strip().splitlines()[-1] if trace.strip() else "?"
        return f"rank {rank} failed: {last} (rank 0 then stopped: {error})"

    def call(self, method: str, **args: Any) -> Any:
        if not self._finalizer.alive and method in self._last:
            return self._last[method]
        try:
            value = super().call(method, **args)
        except AttachError as exc:
            dead = [p for p in self._procs if p.exitcode not in (None, 0)]
            if not dead:
                raise
            codes = ", ".join(f"rank {self._procs.index(p)}: {p.exitcode}" for p in dead)
            raise AttachError(f"{exc} (worker exit codes: {codes})") from exc
        if method in ("status", "records"):
            self._last[method] = value
        return value

    def wait(self, timeout: float | None = None) -> RunState:
        """Wait until the run is no longer training (or ``timeout`` s); once it is done or
        failed, also until the other ranks ended their fit (their processes exit then)."""
        start = time.monotonic()
        state = super().wait(timeout)
        if state in (RunState.DONE, RunState.ERROR):
            left = 30.0 if timeout is None else timeout - (time.monotonic() - start)
            deadline = time.monotonic() + max(0.0, left)
            for proc in self._procs[1:]:
                proc.join(max(0.0, deadline - time.monotonic()))
        return state

    def stop(self) -> None:
        """End the run gracefully (``on_fit_end`` on every rank), then the workers."""
        try:
            if self._finalizer.alive and self.state in (RunState.RUNNING, RunState.PAUSED):
                self.call("stop")
                self.wait(timeout=60.0)
        except (AttachError, RunStateError):
            pass  # ended meanwhile, or unreachable: the workers end below all the same
        finally:
            self.close()

    def close(self) -> None:
        """End the workers now (the run ends with them)."""
        if self._finalizer.alive:
            self.worker_errors()
            with contextlib.suppress(AttachError):
                self.status()
                self.records  # noqa: B018
        super().close()
        self._finalizer()

    def __repr__(self) -> str:
        if not self._finalizer.alive:
            return "<Launched run: workers ended>"
        return "<Launched" + super().__repr__()[len("<Attached") :]


# -- the worker side -------------------------------------------------------------------

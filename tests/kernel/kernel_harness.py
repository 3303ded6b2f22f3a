"""A real ipykernel driven through jupyter_client, sending comm messages as a browser does.

:class:`Kernel` starts ``python -m ipykernel_launcher`` (this interpreter, cwd and ``PYTHONPATH``
at the repository root), runs code as cells, and talks to widgets over comms the way JupyterLab
does: ``comm_msg`` on the shell channel with ``{"method": "update", ...}`` for a trait change or
``{"method": "custom", ...}`` for ``model.send``.  Everything the kernel publishes on iopub is
recorded by a background thread with its arrival time and wire size, so tests can find
``comm_open`` messages and count comm traffic.

Shell requests go through :class:`kernel_shell.ShellClient` (replies matched on ``msg_id``;
never ``wait_for_ready()``, which hangs while the kernel publishes on iopub every < 0.2 s).
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import zmq
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from jupyter_client.session import Session
from kernel_shell import KernelError, ShellClient, error_text

__all__ = ["Executed", "IopubMsg", "Kernel", "KernelError", "ShellClient", "Traffic", "traffic"]

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class IopubMsg:
    """One iopub message: ``t`` is ``time.monotonic()`` at arrival, ``nbytes`` its wire size."""

    t: float
    nbytes: int
    msg: dict[str, Any]

    @property
    def msg_type(self) -> str:
        return str(self.msg["header"]["msg_type"])

    @property
    def content(self) -> dict[str, Any]:
        return dict(self.msg["content"])

    @property
    def parent_id(self) -> str:
        return str(self.msg["parent_header"].get("msg_id", ""))


class Executed(NamedTuple):
    """What a cell produced: ``stdout``, ``result`` (``text/plain`` repr or None), ``error``."""

    stdout: str
    result: str | None
    error: str | None
    stderr: str = ""


class Traffic(NamedTuple):
    """Count, span, rate and total wire size of a list of :class:`IopubMsg`."""

    count: int
    seconds: float
    per_second: float
    nbytes: int


def traffic(msgs: list[IopubMsg]) -> Traffic:
    """Summarize ``msgs`` (rate = count / span between first and last, 0 if fewer than two)."""
    span = msgs[-1].t - msgs[0].t if len(msgs) > 1 else 0.0
    rate = (len(msgs) - 1) / span if span > 0 else 0.0
    return Traffic(len(msgs), span, rate, sum(m.nbytes for m in msgs))


def _idle_after(msg_id: str) -> Callable[[IopubMsg], bool]:
    """Matches the ``idle`` status that ends the kernel's handling of request ``msg_id``."""
    return lambda m: (
        m.parent_id == msg_id and m.msg_type == "status" and m.content["execution_state"] == "idle"
    )


class _IopubRecorder(threading.Thread):
    """Receives every iopub message on its own socket and session (zmq sockets are per thread)."""

    def __init__(self, socket: zmq.Socket, session: Session) -> None:
        super().__init__(name="iopub-recorder", daemon=True)
        self.socket, self.session = socket, session
        self.messages: list[IopubMsg] = []
        self.cond = threading.Condition()
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                if not self.socket.poll(100):
                    continue
                frames = self.socket.recv_multipart()
                t = time.monotonic()
                _, parts = self.session.feed_identities(frames)
                msg = self.session.deserialize(parts)
                with self.cond:
                    self.messages.append(IopubMsg(t, sum(len(f) for f in frames), msg))
                    self.cond.notify_all()
        except Exception as exc:  # surfaced by wait(), never lost with the thread
            self.error = exc
            with self.cond:
                self.cond.notify_all()
        finally:
            self.socket.close(linger=0)

    def wait(self, pred: Callable[[IopubMsg], bool], timeout: float, since: int) -> IopubMsg:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for m in self.messages[since:]:
                    if pred(m):
                        return m
                since = len(self.messages)
                if self.error is not None:
                    raise KernelError(f"iopub recorder died: {self.error!r}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise KernelError(f"no matching iopub message within {timeout}s")
                self.cond.wait(remaining)


class Kernel:
    """A fresh ipykernel; use as a context manager (or :meth:`start` / :meth:`stop`)."""

    def __init__(self, cwd: Path = REPO_ROOT, timeout: float = 60.0) -> None:
        """Prepare a kernel run in ``cwd``; ``timeout`` is the default for every wait."""
        self.cwd, self.timeout = cwd, timeout
        self._tmp = tempfile.TemporaryDirectory(prefix="luzwidget-kernel-")
        # kernel_dirs=[]: always ipykernel's own spec for *this* interpreter, never a user's.
        # IPC transport: no TCP port races, and ipykernel 7.4 warns about unencrypted TCP.
        self.km = KernelManager(
            transport="ipc",
            ip=str(Path(self._tmp.name) / "ipc"),
            kernel_name="python3",
            kernel_spec_manager=KernelSpecManager(kernel_dirs=[]),
            connection_file=str(Path(self._tmp.name) / "kernel.json"),
        )
        self.shell: ShellClient | None = None
        self._iopub: _IopubRecorder | None = None
        self._codes: dict[str, str] = {}

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> Kernel:
        """Start the kernel and return once shell and iopub both answer."""
        env = {**os.environ, "IPYTHONDIR": str(Path(self._tmp.name) / "ipython")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
        self.km.start_kernel(cwd=str(self.cwd), env=env)
        try:
            session = Session(
                key=self.km.session.key, signature_scheme=self.km.session.signature_scheme
            )
            self._iopub = _IopubRecorder(self.km.connect_iopub(), session)
            self._iopub.start()
            self.shell = ShellClient(self.km.client(), self.timeout)
            self._wait_iopub_live()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_iopub_live(self) -> None:
        """Resend ``kernel_info`` until its ``status`` shows on iopub (SUB sockets join late)."""
        assert self.shell is not None
        deadline = time.monotonic() + self.timeout
        while True:
            msg_id = self.shell.client.kernel_info()
            self.shell.reply(msg_id, self.timeout)
            try:
                self.wait_iopub(lambda m, i=msg_id: m.parent_id == i, timeout=0.5)
                return
            except KernelError:
                if time.monotonic() > deadline:
                    raise

    def stop(self) -> None:
        """Shut the kernel down (kill if it does not exit) and stop the recorder; idempotent."""
        if self._iopub is not None:
            self._iopub.stopping.set()
            self._iopub.join(5)
            self._iopub = None
        if self.shell is not None:
            self.shell.close()
            self.shell = None
        try:
            if self.km.has_kernel:
                self.km.shutdown_kernel(now=False)  # kills it if it does not exit in 5 s
        finally:
            self._tmp.cleanup()

    def __enter__(self) -> Kernel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def interrupt(self) -> None:
        """Interrupt the kernel as the notebook's Interrupt button does (SIGINT)."""
        self.km.interrupt_kernel()

    # -- cells ------------------------------------------------------------------------------

    def submit(self, code: str) -> str:
        """Send ``code`` as a cell and return its ``msg_id`` at once (see :meth:`collect`)."""
        assert self.shell is not None, "kernel not started"
        msg_id = self.shell.client.execute(code, store_history=True, allow_stdin=False)
        self._codes[msg_id] = code
        return str(msg_id)

    def collect(self, msg_id: str, timeout: float | None = None, check: bool = True) -> Executed:
        """Outputs of cell ``msg_id`` once the kernel is idle again; raise on error if ``check``."""
        assert self.shell is not None, "kernel not started"
        timeout = self.timeout if timeout is None else timeout
        self.shell.reply(msg_id, timeout)
        self.wait_iopub(_idle_after(msg_id), timeout)
        out: dict[str, str] = {"stdout": "", "stderr": ""}
        result = error = None
        for m in self.iopub(parent_id=msg_id):
            if m.msg_type == "stream":
                out[m.content["name"]] += m.content["text"]
            elif m.msg_type == "execute_result":
                result = m.content["data"].get("text/plain")
            elif m.msg_type == "error":
                error = error_text(m.content)
        if check and error:
            raise KernelError(f"cell raised {error}\n--- cell ---\n{self._codes.get(msg_id, '')}")
        return Executed(out["stdout"], result, error, out["stderr"])

    def execute(self, code: str, timeout: float | None = None, check: bool = True) -> Executed:
        """Run ``code`` as a cell; see :meth:`collect`."""
        return self.collect(self.submit(code), timeout, check)

    def eval(self, expr: str, timeout: float | None = None) -> Any:
        """Value of ``expr`` (JSON-serializable) in the kernel."""
        assert self.shell is not None, "kernel not started"
        return self.shell.eval(expr, self.timeout if timeout is None else timeout)

    # -- iopub ------------------------------------------------------------------------------

    def iopub(
        self, msg_type: str | None = None, parent_id: str | None = None, since: int = 0
    ) -> list[IopubMsg]:
        """Recorded iopub messages (from index ``since``), filtered by type and parent."""
        assert self._iopub is not None, "kernel not started"
        with self._iopub.cond:
            msgs = self._iopub.messages[since:]
        return [
            m
            for m in msgs
            if (msg_type is None or m.msg_type == msg_type)
            and (parent_id is None or m.parent_id == parent_id)
        ]

    def mark(self) -> int:
        """Index of the next iopub message, for ``since=`` arguments."""
        assert self._iopub is not None, "kernel not started"
        with self._iopub.cond:
            return len(self._iopub.messages)

    def wait_iopub(
        self, pred: Callable[[IopubMsg], bool], timeout: float | None = None, since: int = 0
    ) -> IopubMsg:
        """First recorded iopub message (from ``since``) for which ``pred`` holds; waits."""
        assert self._iopub is not None, "kernel not started"
        return self._iopub.wait(pred, self.timeout if timeout is None else timeout, since)

    # -- comms ------------------------------------------------------------------------------

    def comm_opens(self) -> dict[str, dict[str, Any]]:
        """``comm_id -> content`` of every ``comm_open`` the kernel sent (widget model id)."""
        return {m.content["comm_id"]: m.content for m in self.iopub("comm_open")}

    def wait_comm_open(self, comm_id: str, timeout: float | None = None) -> dict[str, Any]:
        """Content of the ``comm_open`` for ``comm_id`` (its ``data.state`` is the widget state)."""
        return self.wait_iopub(
            lambda m: m.msg_type == "comm_open" and m.content["comm_id"] == comm_id, timeout
        ).content

    def comm_msgs(
        self, comm_id: str | None = None, method: str | None = None, since: int = 0
    ) -> list[IopubMsg]:
        """Recorded kernel -> frontend ``comm_msg`` messages, filtered by comm and data method."""
        return [
            m
            for m in self.iopub("comm_msg", since=since)
            if (comm_id is None or m.content["comm_id"] == comm_id)
            and (method is None or m.content["data"].get("method") == method)
        ]

    def wait_comm_msg(
        self,
        comm_id: str,
        pred: Callable[[dict[str, Any]], bool] = lambda data: True,
        timeout: float | None = None,
        since: int = 0,
    ) -> dict[str, Any]:
        """``data`` of the first ``comm_msg`` on ``comm_id`` (from ``since``) passing ``pred``."""
        return self.wait_iopub(
            lambda m: (
                m.msg_type == "comm_msg"
                and m.content["comm_id"] == comm_id
                and pred(m.content["data"])
            ),
            timeout,
            since,
        ).content["data"]

    def send_comm(
        self,
        comm_id: str,
        data: dict[str, Any],
        wait: bool = True,
        buffers: list[bytes] | None = None,
    ) -> str:
        """Send a frontend ``comm_msg``; with ``wait``, return once the kernel has handled it.

        ``wait`` needs the kernel to be idle (a blocking cell handles no comm messages).
        Returns the message's ``msg_id`` (the parent of whatever the kernel sends in reply).
        """
        assert self.shell is not None, "kernel not started"
        client = self.shell.client
        msg = client.session.msg("comm_msg", {"comm_id": comm_id, "data": data})
        msg["buffers"] = buffers or []
        client.shell_channel.send(msg)
        msg_id = str(msg["header"]["msg_id"])
        if wait:
            self.wait_iopub(_idle_after(msg_id))
        return msg_id

    def send_update(self, comm_id: str, state: dict[str, Any], wait: bool = True) -> str:
        """Set widget traits from the "browser" (``method: update``)."""
        return self.send_comm(
            comm_id, {"method": "update", "state": state, "buffer_paths": []}, wait
        )

    def send_custom(
        self, comm_id: str, content: Any, wait: bool = True, buffers: list[bytes] | None = None
    ) -> str:
        """Send what ``model.send(content, callbacks, buffers)`` sends from JavaScript."""
        return self.send_comm(comm_id, {"method": "custom", "content": content}, wait, buffers)

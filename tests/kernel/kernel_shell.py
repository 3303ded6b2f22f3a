"""Shell-channel access to a running kernel: requests matched to replies by ``msg_id``.

Used by :mod:`kernel_harness` and by the browser tests, which read kernel-side values of a
notebook's kernel through its connection file.  Not ``wait_for_ready()``: measured, it hangs
while the kernel publishes on iopub more often than every 0.2 s; ``kernel_info`` + a reply
matched on its ``msg_id`` is used instead.
"""

from __future__ import annotations

import ast
import json
import os
import queue
import re
import time
from typing import Any

from jupyter_client.blocking import BlockingKernelClient


class KernelError(AssertionError):
    """A cell or expression raised in the kernel, or the kernel did not answer in time."""


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)


def error_text(content: dict[str, Any]) -> str:
    """``ename: evalue`` and the plain-text traceback of an error reply or output."""
    tb = _strip_ansi("\n".join(content.get("traceback", [])))
    return f"{content.get('ename')}: {content.get('evalue')}\n{tb}".strip()


class ShellClient:
    """Shell channel only: requests whose replies are matched on the parent ``msg_id``."""

    def __init__(self, client: BlockingKernelClient, timeout: float = 60.0) -> None:
        """Start the shell channel of ``client`` and wait for a ``kernel_info`` reply."""
        self.client = client
        self._unclaimed: dict[str, dict[str, Any]] = {}
        client.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
        self.reply(client.kernel_info(), timeout)

    @classmethod
    def from_connection_file(cls, path: str | os.PathLike[str], timeout: float = 60.0):
        """Connect to the kernel described by a ``kernel-<id>.json`` connection file."""
        client = BlockingKernelClient()
        client.load_connection_file(str(path))
        return cls(client, timeout)

    def reply(self, msg_id: str, timeout: float = 60.0) -> dict[str, Any]:
        """The shell reply to request ``msg_id``; replies to other requests are kept for later."""
        deadline = time.monotonic() + timeout
        while msg_id not in self._unclaimed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise KernelError(f"no shell reply to {msg_id} within {timeout}s")
            try:
                msg = self.client.get_shell_msg(timeout=min(remaining, 1.0))
            except queue.Empty:
                continue
            self._unclaimed[msg["parent_header"].get("msg_id", "")] = msg
        return self._unclaimed.pop(msg_id)

    def eval(self, expr: str, timeout: float = 60.0) -> Any:
        """Value of ``expr`` in the kernel, through a JSON round trip (no history, no output)."""
        code = f"__import__('json').dumps({expr})"
        msg_id = self.client.execute(
            "", silent=True, store_history=False, user_expressions={"v": code}
        )
        content = self.reply(msg_id, timeout)["content"]
        if content["status"] != "ok":
            raise KernelError(f"{expr!r} not evaluated: {error_text(content)}")
        value = content["user_expressions"]["v"]
        if value.get("status") != "ok":
            raise KernelError(f"{expr!r} raised {error_text(value)}")
        return json.loads(ast.literal_eval(value["data"]["text/plain"]))

    def close(self) -> None:
        """Stop the channels (the kernel keeps running)."""
        self.client.stop_channels()

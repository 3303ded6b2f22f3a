"""The kernel harness itself: cells, values, widget comms both ways, interrupt."""

from __future__ import annotations

import pytest
from kernel_harness import Kernel, KernelError, traffic

pytestmark = pytest.mark.kernel

ECHO_WIDGET = """
import anywidget, traitlets

class Echo(anywidget.AnyWidget):
    _esm = "export default { render({ model, el }) { el.textContent = 'echo'; } }"
    received = traitlets.List().tag(sync=False)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.on_msg(self._on_custom)

    def _on_custom(self, widget, content, buffers):
        self.received = [*self.received, [content, [bytes(b).decode() for b in buffers]]]
        self.send({"echo": content, "n": len(self.received)})

echo = Echo()
print(echo.model_id)
"""


def test_execute_returns_stdout_result_and_error(kernel: Kernel) -> None:
    assert kernel.execute("print('hi'); 40 + 2") == ("hi\n", "42", None, "")
    failed = kernel.execute("1 / 0", check=False)
    assert failed.error is not None
    assert failed.error.startswith("ZeroDivisionError")
    with pytest.raises(KernelError, match="ZeroDivisionError"):
        kernel.execute("1 / 0")


def test_eval_and_repo_on_path(kernel: Kernel) -> None:
    kernel.execute("x = {'a': [1, 2.5, None]}")
    assert kernel.eval("x") == {"a": [1, 2.5, None]}
    assert kernel.eval("__import__('os').getcwd()") == str(kernel.cwd)
    assert kernel.eval("__import__('luzwidget').__file__").startswith(str(kernel.cwd))
    with pytest.raises(KernelError, match="NameError"):
        kernel.eval("undefined_name")


def test_int_slider_update_both_ways(kernel: Kernel) -> None:
    out = kernel.execute("import ipywidgets\ns = ipywidgets.IntSlider(value=1)\nprint(s.model_id)")
    comm_id = out.stdout.strip()
    opened = kernel.wait_comm_open(comm_id)
    assert opened["target_name"] == "jupyter.widget"
    assert opened["data"]["state"]["value"] == 1

    kernel.send_update(comm_id, {"value": 7})  # what the browser sends when the slider moves
    assert kernel.eval("s.value") == 7

    mark = kernel.mark()
    kernel.execute("s.value = 3")
    data = kernel.wait_comm_msg(comm_id, lambda d: d["method"] == "update", since=mark)
    assert data["state"] == {"value": 3}


def test_anywidget_custom_round_trip(kernel: Kernel) -> None:
    comm_id = kernel.execute(ECHO_WIDGET).stdout.strip()
    assert "_esm" in kernel.wait_comm_open(comm_id)["data"]["state"]

    mark = kernel.mark()
    for i in range(3):
        kernel.send_custom(comm_id, {"ping": i})
    kernel.send_custom(comm_id, {"bin": True}, buffers=[b"raw"])
    assert kernel.eval("echo.received") == [
        [{"ping": 0}, []],
        [{"ping": 1}, []],
        [{"ping": 2}, []],
        [{"bin": True}, ["raw"]],
    ]
    replies = kernel.comm_msgs(comm_id, method="custom", since=mark)
    assert [m.content["data"]["content"] for m in replies[:3]] == [
        {"echo": {"ping": i}, "n": i + 1} for i in range(3)
    ]
    stats = traffic(replies)
    assert stats.count == 4
    assert stats.nbytes > 0


def test_comm_traffic_rate(kernel: Kernel) -> None:
    code = "import ipywidgets\ns = ipywidgets.IntSlider(max=10**6)\nprint(s.model_id)"
    comm_id = kernel.execute(code).stdout.strip()
    mark = kernel.mark()
    kernel.execute("import time\nfor i in range(1, 21):\n    s.value = i\n    time.sleep(0.01)")
    stats = traffic(kernel.comm_msgs(comm_id, method="update", since=mark))
    assert stats.count == 20
    assert 10 < stats.per_second < 200  # ~one message per 10 ms sleep


def test_interrupt_sleeping_cell(kernel: Kernel) -> None:
    msg_id = kernel.submit("import time\nprint('sleeping', flush=True)\ntime.sleep(30)")
    kernel.wait_iopub(lambda m: m.parent_id == msg_id and m.msg_type == "stream")
    kernel.interrupt()
    result = kernel.collect(msg_id, timeout=10, check=False)
    assert result.error is not None
    assert result.error.startswith("KeyboardInterrupt")
    assert kernel.execute("'alive'").result == "'alive'"

"""The browser harness itself: widgets render and clicks reach the kernel, in Lab and Notebook 7."""

from __future__ import annotations

import pytest
from harness import expect  # lazy: collecting must not need playwright

pytestmark = pytest.mark.browser

BUTTON_CELL = """\
import ipywidgets
clicks = []
button = ipywidgets.Button(description="Click me", button_style="info")
button.on_click(lambda b: clicks.append(b.description))
button
"""

ANYWIDGET_CELL = '''\
import anywidget, traitlets

class Clicker(anywidget.AnyWidget):
    _esm = """
    export default {
      render({ model, el }) {
        const btn = document.createElement("button");
        btn.className = "harness-clicker";
        btn.setAttribute("aria-label", "harness clicker");
        const show = () => { btn.textContent = `clicked ${model.get("count")}`; };
        btn.addEventListener("click", () => {
          model.set("count", model.get("count") + 1);
          model.save_changes();
          model.send({ kind: "clicked" });
        });
        model.on("change:count", show);
        show();
        el.appendChild(btn);
        return () => model.off("change:count", show);
      },
    };
    """
    _css = ".harness-clicker { background: #ffd54f; border: 1px solid #333; padding: 4px 12px; }"
    count = traitlets.Int(0).tag(sync=True)

messages = []
clicker = Clicker()
clicker.on_msg(lambda widget, content, buffers: messages.append(content))
clicker
'''


@pytest.mark.parametrize("ui", ["lab", "notebook"])
def test_widgets_render_and_clicks_reach_the_kernel(open_notebook, ui) -> None:
    nb = open_notebook([BUTTON_CELL, ANYWIDGET_CELL], ui=ui)
    nb.run_all()

    button = nb.wait_for(nb.output(0).get_by_role("button", name="Click me"))
    nb.screenshot(nb.output(0), "ipywidgets-button")
    button.click()
    nb.wait_value("clicks", ["Click me"])

    clicker = nb.wait_for(nb.output(1).locator("button.harness-clicker"))
    expect(clicker).to_have_attribute("aria-label", "harness clicker")
    expect(clicker).to_have_text("clicked 0")
    clicker.click()
    nb.wait_value("clicker.count", 1)
    nb.wait_value("messages", [{"kind": "clicked"}])
    expect(clicker).to_have_text("clicked 1")

    nb.eval("setattr(clicker, 'count', 5)")  # kernel -> browser
    expect(clicker).to_have_text("clicked 5")
    nb.screenshot(nb.output(1), "anywidget-clicker")
    assert nb.errors() == []


def test_interrupt_from_the_page(open_notebook) -> None:
    nb = open_notebook(["import time\nprint('sleeping', flush=True)\ntime.sleep(60)", "after = 1"])
    nb.command("notebook:run-all-cells", wait=False)
    expect(nb.output(0)).to_contain_text("sleeping")
    nb.command("kernelmenu:interrupt")  # the Interrupt button
    nb.wait_idle()
    cells = nb.cells()
    assert [o.get("ename") for o in cells[0]["outputs"]] == [None, "KeyboardInterrupt"]
    assert cells[1]["executionCount"] is None  # run-all stops at the error
    assert nb.eval("'after' in globals()") is False

"""The Playground panel in a real JupyterLab (light and dark) and Notebook 7 (issue 24).

The spiral, a small ReLU MLP: the panel is open at once (two input features), draws the
decision regions under the training and validation points and one map per hidden unit; a
click on Step batch changes the regions (the image the kernel's grid paints, and the grid the
kernel sent). Element screenshots go to the artifacts dir (``LUZWIDGET_ARTIFACTS``).
"""

from __future__ import annotations

from typing import Any

import pytest
from harness import NotebookPage, expect  # lazy: collecting must not need playwright

pytestmark = pytest.mark.browser

SETUP = """\
import torch
from torch import nn
import luzwidget as lw

torch.set_num_threads(1)
X, y = lw.datasets.playground("spiral", n=400, noise=0.1, seed=0)
torch.manual_seed(0)
net = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2))
spec = lw.setup(net, loss=nn.CrossEntropyLoss(), optimizer=torch.optim.Adam)
run = spec.set_opt_hparams(lr=0.05).run(
    (X, y), epochs=5, valid_data=0.25, verbose=False, dataloader_options={"batch_size": 20}
)
"""

SHOW = "dash = run.dashboard()\ndash"

REGIONS = """(root) => {
  const gd = root.querySelector('.lw-play-plot.js-plotly-plot');
  const regions = root.querySelector('canvas.lw-play-regions');
  if (!gd || !gd.data || !regions || regions.hidden || !regions.width) return null;
  return [regions.toDataURL(), gd.data.map((t) => t.x.length)];
}"""


def _theme(nb: NotebookPage, dark: bool) -> None:
    """Switch JupyterLab's theme (a server-wide setting: put back after the test)."""
    name = "JupyterLab Dark" if dark else "JupyterLab Light"
    nb.page.evaluate(
        f"() => window.jupyterapp.commands.execute('apputils:change-theme', {{theme: '{name}'}})"
    )
    light = "false" if dark else "true"
    nb.page.wait_for_function(f"() => document.body.dataset.jpThemeLight === '{light}'")


def _regions(nb: NotebookPage, dash: Any, other_than: str | None = None) -> list[Any]:
    nb.page.wait_for_function(
        f"(root) => {{ const r = ({REGIONS})(root); return r && r[0] !== {other_than!r}; }}"
        if other_than
        else f"(root) => ({REGIONS})(root) !== null",
        arg=dash.element_handle(),
        timeout=30_000,
    )
    out: list[Any] = dash.evaluate(REGIONS)
    return out


@pytest.mark.parametrize(
    ("ui", "dark"),
    [("lab", False), ("lab", True), ("notebook", False)],
    ids=["lab", "lab-dark", "notebook"],
)
def test_decision_regions_change_between_two_steps(open_notebook, ui: str, dark: bool) -> None:
    nb = open_notebook([SETUP, SHOW], ui=ui)
    nb.page.set_viewport_size({"width": 1440, "height": 1800})
    if dark:
        _theme(nb, True)
    try:
        _step_and_look(nb, dark)
    finally:
        if dark:
            _theme(nb, False)


def _step_and_look(nb: NotebookPage, dark: bool) -> None:
    nb.run_all()
    dash = nb.wait_for(nb.output(1).locator(".lw-dashboard"))
    panel = dash.locator(".lw-playground")
    expect(panel).to_have_attribute("open", "")
    expect(panel.locator(".lw-hint")).to_have_text("2 classes", timeout=30_000)
    first, sizes = _regions(nb, dash)
    assert first.startswith("data:image/png;base64,")
    assert sizes == [300, 100]  # the training points, the validation points
    expect(dash.locator(".lw-play-unit-map")).to_have_count(16)  # 8 + 8 of 16 units each
    z_before = nb.eval("dash._collector.panels['playground'].sent['view']['z']")
    nb.screenshot(panel, f"playground-1-ready{'-dark' if dark else ''}")
    nb.screenshot(dash, f"playground-0-dashboard{'-dark' if dark else ''}")

    for _ in range(2):
        before = nb.eval("run.n_events")
        dash.get_by_role("button", name="Step batch", exact=True).click()
        nb.wait_value(f"[run.n_events > {before}, run.state]", [True, "paused"])
    second, _ = _regions(nb, dash, other_than=first)
    assert second != first
    z_after = nb.wait_value(
        "dash._collector.panels['playground'].sent['view']['z']", lambda z: z != z_before
    )
    assert len(z_after) == len(z_before) == 60
    nb.screenshot(panel, f"playground-2-after-steps{'-dark' if dark else ''}")

    # The teacher's edits in Settings: weight decay now, batch size from the next epoch.
    decay = dash.get_by_label("weight_decay", exact=True)
    expect(decay).to_have_value("0.0")
    decay.fill("1e-3")
    decay.press("Enter")
    nb.wait_value("run.ctx.optimizers['opt'].param_groups[0]['weight_decay']", 0.001)
    size = dash.get_by_label("batch_size", exact=True)
    expect(size).to_have_value("20")
    size.fill("40")
    size.press("Enter")
    expect(dash.locator(f"#{size.get_attribute('aria-describedby')}")).to_have_text(
        "batch_size set to 40 from the next epoch on"
    )
    expect(size).to_have_value("20 → 40")
    size.fill("0")
    size.press("Enter")
    expect(dash.locator(f"#{size.get_attribute('aria-describedby')}")).to_contain_text(
        "batch_size must be a whole number >= 1 (e.g. 32), got int 0"
    )
    nb.screenshot(dash.locator(".lw-edits"), f"playground-settings{'-dark' if dark else ''}")
    size.blur()  # a focused box keeps what is typed in it; the config shows once it is left

    # Trained on: the regions follow the spiral; the next epoch has batches of 40.
    dash.get_by_role("button", name="Step epoch", exact=True).click()
    nb.wait_value("[run.ctx.epoch, run.state]", lambda v: v[0] >= 1 and v[1] == "paused")
    third, _ = _regions(nb, dash, other_than=second)
    expect(size).to_have_value("20 → 40")  # paused at the epoch's end: not begun yet
    before = nb.eval("run.n_events")
    dash.get_by_role("button", name="Step batch", exact=True).click()
    nb.wait_value(f"[run.n_events > {before}, run.state]", [True, "paused"])
    expect(size).to_have_value("40")
    assert nb.eval("len(run.ctx.input)") == 40
    _regions(nb, dash, other_than=third)
    nb.screenshot(panel, f"playground-3-epoch{'-dark' if dark else ''}")
    assert nb.errors() == []


SINE = """\
import torch
from torch import nn
import luzwidget as lw

torch.set_num_threads(1)
X, y = lw.datasets.playground("sine", n=200, noise=0.1, seed=0)
torch.manual_seed(0)
net = nn.Sequential(nn.Linear(1, 16), nn.Tanh(), nn.Linear(16, 1))
spec = lw.setup(net, loss=nn.MSELoss(), optimizer=torch.optim.Adam)
run = spec.set_opt_hparams(lr=0.05).run(
    (X, y), epochs=30, valid_data=0.2, verbose=False, dataloader_options={"batch_size": 20}
)
"""

CURVE = """(root) => {
  const gd = root.querySelector('.lw-play-plot.js-plotly-plot');
  if (!gd || !gd.data || gd.data.length < 3) return null;
  return gd.data.map((t) => [t.mode, t.x.length]);
}"""


def test_regression_curve_in_notebook(open_notebook) -> None:
    nb = open_notebook([SINE, SHOW, "run.resume()"], ui="notebook")
    nb.page.set_viewport_size({"width": 1440, "height": 1800})
    nb.run_all()
    dash = nb.wait_for(nb.output(1).locator(".lw-dashboard"))
    expect(dash.get_by_role("status", name="Run state")).to_have_text("done", timeout=60_000)
    panel = dash.locator(".lw-playground")
    expect(panel.locator(".lw-hint")).to_have_text("regression")
    nb.page.wait_for_function(f"(root) => ({CURVE})(root) !== null", arg=dash.element_handle())
    traces = dash.evaluate(CURVE)
    assert traces == [["markers", 160], ["markers", 40], ["lines", 200]]
    expect(dash.locator(".lw-play-unit-map")).to_have_count(8)
    nb.screenshot(panel, "playground-sine")
    assert nb.errors() == []

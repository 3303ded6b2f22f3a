"""The "Layers over time" panel in a real JupyterLab, light and dark, and Notebook 7 (issue 24).

A teacher opens the panel, trains a small Tanh/ReLU MLP on the digits, and sees each
parameter's update ratio as a log10 curve with the 1e-3 guide, the dead and saturated shares,
and a layer's output histograms over time as a heatmap; picking the first layer's weights
redraws the heatmap. Element screenshots go to the artifacts dir (``LUZWIDGET_ARTIFACTS``).
"""

from __future__ import annotations

from typing import Any

import pytest
from harness import NotebookPage, expect  # lazy: collecting must not need playwright

pytestmark = pytest.mark.browser

SETUP = """\
import torch
from torch import nn
from sklearn.datasets import load_digits
import luzwidget as lw

torch.set_num_threads(1)
torch.manual_seed(0)
digits = load_digits()
X = torch.tensor(digits.data, dtype=torch.float32) / 16
net = nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 10))
model = lw.setup(net, loss=nn.CrossEntropyLoss(), optimizer=torch.optim.SGD).set_opt_hparams(lr=0.2)
run = model.run(
    (X, torch.tensor(digits.target)), epochs=2, verbose=False,
    dataloader_options={"batch_size": 32},
)
"""

SHOW = "dash = run.dashboard()\ndash"

RATIO = """(root) => {
  const gd = root.querySelector('.lw-history-ratio');
  return gd && gd.data ? gd.data.map((t) => t.y.filter((v) => v !== null).length) : null;
}"""

GUIDE = """(root) => {
  const gd = root.querySelector('.lw-history-ratio');
  const s = gd && gd.layout && gd.layout.shapes && gd.layout.shapes[0];
  return s ? [s.y0, s.y1, s.line.dash] : null;
}"""

INK = """(c) => {
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const seen = new Set();
  for (let i = 0; i < d.length; i += 4 * 97) seen.add(`${d[i]},${d[i + 1]},${d[i + 2]}`);
  return seen.size;
}"""


def _theme(nb: NotebookPage, dark: bool) -> None:
    """Switch the theme (a user setting: the server keeps it for later pages too)."""
    name = "JupyterLab Dark" if dark else "JupyterLab Light"
    nb.page.evaluate(
        f"() => window.jupyterapp.commands.execute('apputils:change-theme', {{theme: '{name}'}})"
    )
    light = "false" if dark else "true"
    nb.page.wait_for_function(f"() => document.body.dataset.jpThemeLight === '{light}'")


@pytest.fixture(autouse=True)
def _patient_expect() -> Any:
    from playwright.sync_api import expect as playwright_expect

    playwright_expect.set_options(timeout=30_000)
    yield
    playwright_expect.set_options(timeout=5_000)


@pytest.mark.parametrize(
    ("ui", "theme"), [("lab", "light"), ("lab", "dark"), ("notebook", "light")]
)
def test_layers_over_time_curves_and_heatmap(open_notebook, ui: str, theme: str) -> None:
    nb = open_notebook([SETUP, SHOW], ui=ui)
    nb.page.set_viewport_size({"width": 1440, "height": 1800})
    _theme(nb, theme == "dark")
    try:
        _check(nb, theme, ui)
    finally:
        if theme == "dark":
            _theme(nb, False)  # the next test's pages open light


def _check(nb: NotebookPage, theme: str, ui: str) -> None:
    nb.run_all()
    dash = nb.wait_for(nb.output(1).locator(".lw-dashboard"))
    history = dash.locator(".lw-history")
    expect(history.locator(".lw-hint")).to_have_text("closed: nothing computed")
    assert "HistoryTracker" not in nb.eval("[type(cb).__name__ for cb in run.ctx.callbacks]")
    history.locator("summary").click()
    nb.wait_value("dash._collector.panels['history'].open", True)

    # Three stepped batches: a column each.
    nb.eval("run.step('batch', n=3) and None")
    expect(history.locator(".lw-hint")).to_contain_text("3 samples")
    # A free run, every batch sampled (the publisher still sends a few times a second).
    nb.eval("run.track_layers(every_s=0) or run.start()")
    expect(dash.get_by_role("status", name="Run state")).to_have_text("done", timeout=60_000)
    samples = nb.eval("len(run.layer_history().drop_duplicates('step'))")
    assert samples == 2 * nb.eval("len(run.ctx.train_data)")  # every batch sampled
    expect(history.locator(".lw-hint")).to_contain_text(f"{samples} samples")
    nb.page.wait_for_function(
        "([root, n]) => { const gd = root.querySelector('.lw-history-ratio');"
        " return gd && gd.data && gd.data.length === 6 && gd.data[0].x.length === n; }",
        arg=[dash.element_handle(), samples],
    )
    counts = dash.evaluate(RATIO)
    assert counts == [samples] * 6  # every parameter's ratio, every sample
    assert dash.evaluate(GUIDE) == [-3, -3, "dash"]
    share = dash.evaluate("(r) => r.querySelector('.lw-history-share').data.map((t) => t.name)")
    assert share == ["3 dead", "1 saturated"]
    canvas = history.locator("canvas.lw-history-heat")
    assert canvas.evaluate(INK) > 3, "the heatmap is blank"
    assert history.evaluate("(el) => getComputedStyle(el).color") == (
        "rgba(255, 255, 255, 0.87)" if theme == "dark" else "rgba(0, 0, 0, 0.87)"
    )
    nb.screenshot(history, f"history-{theme}-outputs")

    history.locator("select.lw-history-pick").select_option("weights|0.weight")
    nb.wait_value("dash._collector.panels['history'].picked", "weights|0.weight")
    expect(history.locator(".lw-history-range")).to_contain_text(f"{samples} samples")
    assert canvas.evaluate(INK) > 3
    nb.screenshot(history, f"history-{theme}-weights")
    assert nb.errors() == []

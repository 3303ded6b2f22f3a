"""The dashboard in JupyterLab Dark: state colours switch to the dark palette, the raw loss
line is drawn at an opacity that keeps 3:1 contrast; a screenshot for a person to look at."""

from __future__ import annotations

import pytest
from harness import NotebookPage, expect

pytestmark = pytest.mark.browser

SETUP = """\
import torch
from torch import nn
import luzwidget as lw
torch.manual_seed(0)
X = torch.randn(512, 4); y = X.sum(1, keepdim=True)
model = lw.setup(nn.Linear, loss=nn.MSELoss(), optimizer=torch.optim.SGD).set_hparams(
    in_features=4, out_features=1).set_opt_hparams(lr=0.05)
run = model.run((X, y), epochs=6, valid_data=0.2, verbose=False,
                dataloader_options={"batch_size": 8})
"""

RAW_OPACITY = """(root) => {
  const gd = root.querySelector('.lw-plot[data-metric="__stream"] .js-plotly-plot');
  return gd && gd.data ? gd.data[0].opacity : null;
}"""


def _dark(nb: NotebookPage) -> None:
    nb.page.evaluate(
        "() => window.jupyterapp.commands.execute('apputils:change-theme',"
        " {theme: 'JupyterLab Dark'})"
    )
    nb.page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'")


def test_dashboard_in_jupyterlab_dark(open_notebook) -> None:
    nb = open_notebook([SETUP, "run.dashboard()", "run.resume()"], ui="lab")
    nb.page.set_viewport_size({"width": 1440, "height": 1600})
    _dark(nb)
    nb.run_all()
    dash = nb.wait_for(nb.output(1).locator(".lw-dashboard"))
    expect(dash.get_by_role("status", name="Run state")).to_have_text("done", timeout=60_000)
    nb.page.wait_for_function(
        "(root) => { const gd = root.querySelector('.lw-plot-metric .js-plotly-plot');"
        " return gd && gd.data && gd.data[0].x.length === 6; }",
        arg=dash.element_handle(),
    )
    text = dash.evaluate("(el) => getComputedStyle(el).getPropertyValue('--lw-train-text').trim()")
    assert text == "#90caf9"  # the dark palette, not the light one
    opacity = dash.evaluate(RAW_OPACITY)
    assert opacity is not None
    assert opacity > 0.35  # raised until the line has 3:1 on the dark background
    # Done: the epoch bar is full (a panel's CSS once hid it) and no Skip batch is offered.
    # (the fill is a gradient's stop, --lw-frac: progress.js, dashboard.css)
    fill = dash.locator(".lw-bar-epoch .lw-bar-fill")
    track = dash.locator(".lw-bar-epoch")
    assert fill.bounding_box()["width"] >= 0.95 * track.bounding_box()["width"] > 0
    assert fill.evaluate("(el) => getComputedStyle(el).getPropertyValue('--lw-frac')") == "1.0000"
    image = fill.evaluate("(el) => getComputedStyle(el).backgroundImage")
    assert image.startswith("linear-gradient(to right, rgb(")
    expect(dash.get_by_role("button", name="Skip batch")).to_be_hidden()
    nb.screenshot(dash, "dashboard-dark")
    assert nb.errors() == []

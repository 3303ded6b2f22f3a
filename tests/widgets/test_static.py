"""The dashboard's static text/html: what nbconvert, GitHub and nbviewer show without a kernel."""

from __future__ import annotations

import math

import nbformat
import pytest
import torch
from torch import nn

import luzwidget as lw
from luzwidget.widgets import Dashboard
from luzwidget.widgets.static import static_html, svg_plot

SETUP = """\
import torch
from torch import nn
import luzwidget as lw
torch.manual_seed(0)
X = torch.randn(64, 3); y = X.sum(1, keepdim=True)
model = lw.setup(nn.Linear, loss=nn.MSELoss(), optimizer=torch.optim.SGD).set_hparams(
    in_features=3, out_features=1).set_opt_hparams(lr=0.05)
run = model.run((X, y), epochs=3, valid_data=0.25, verbose=False)
"""


def _run(epochs: int = 2) -> lw.Run:
    torch.manual_seed(0)
    X = torch.randn(64, 3)
    setup = lw.setup(nn.Linear, loss=nn.MSELoss(), optimizer=torch.optim.SGD)
    setup = setup.set_hparams(in_features=3, out_features=1).set_opt_hparams(lr=0.05)
    return setup.run((X, X.sum(1, keepdim=True)), epochs=epochs, valid_data=0.25, verbose=False)


def test_svg_plot_skips_non_finite_values_and_empty_lines() -> None:
    svg = svg_plot("loss", [("train", "#123456", [1, 2, 3], [1.0, math.nan, 0.5])])
    assert svg.startswith("<svg")
    assert svg.endswith("</svg>")
    assert svg.count("<polyline") == 1
    assert "nan" not in svg.lower().replace("aria", "")
    assert svg_plot("loss", [("train", "#123456", [1], [math.inf])]) == ""


def test_static_html_has_state_metrics_and_curves_and_escapes_text() -> None:
    run = _run()
    run.resume()
    out = static_html(run, {"loss": {"x": [1, 2, 3], "y": [3.0, 2.0, 1.0]}})
    assert "state <strong>done</strong>" in out
    assert "epoch 2 / 2" in out
    assert "<th>loss</th>" in out
    assert "<th>valid</th>" in out
    assert out.count("<svg") == 2  # the batch stream and the loss per epoch
    assert "<script" not in out
    assert "&lt;b&gt;" in svg_plot("<b>", [("<b>", "#000", [1, 2], [1, 2])])


def test_the_dashboard_bundle_has_the_widget_view_and_text_html() -> None:
    dash = Dashboard(_run())
    bundle = dash._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "application/vnd.jupyter.widget-view+json" in data
    assert "state <strong>ready</strong>" in data["text/html"]
    dash.close()


@pytest.mark.timeout(300)
def test_nbconvert_html_of_an_executed_notebook_shows_the_final_state() -> None:
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nb.cells = [
        nbformat.v4.new_code_cell(SETUP),
        nbformat.v4.new_code_cell("run.dashboard()"),
        nbformat.v4.new_code_cell("run.resume()"),
        # The update (display id) of cell 1's output arrives while this cell runs.
        nbformat.v4.new_code_cell("import time; time.sleep(1.0); run.state"),
    ]
    # JupyterLab saves no widget state by default; with it, nbconvert shows the widget view.
    NotebookClient(nb, timeout=240, kernel_name="python3", store_widget_state=False).execute()
    shown = nb.cells[1].outputs
    assert len(shown) == 1, shown
    assert "application/vnd.jupyter.widget-view+json" in shown[0]["data"]
    assert "state <strong>done</strong>" in shown[0]["data"]["text/html"]
    body, _ = HTMLExporter().from_notebook_node(nb)
    assert "state <strong>done</strong>" in body  # not "ready": updated when the run ended
    assert "epoch 3 / 3" in body
    assert body.count("<svg ") == 2  # loss per batch and per epoch (nbconvert reorders attrs)
    assert body.count("<polyline ") == 3  # batch; train and valid
    assert "<th>loss</th>" in body

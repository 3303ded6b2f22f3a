"""A luzwidget run in marimo: ``marimo edit examples/marimo_dashboard.py`` (or ``marimo run``).

The dashboard is the same anywidget as in Jupyter, wrapped by ``mo.ui.anywidget``: Start,
Pause, Step, the lr and epoch edits and Stop all work. Run as a script
(``python examples/marimo_dashboard.py``) it only builds the run and its dashboard.
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="full")


@app.cell
def _():
    import marimo as mo
    import torch
    from sklearn.datasets import load_digits
    from torch import nn

    import luzwidget as lw

    torch.manual_seed(0)
    digits = load_digits()
    x = (digits.data - digits.data.mean(0)) / (digits.data.std(0) + 1e-6)
    x = torch.tensor(x, dtype=torch.float32)
    y = torch.tensor(digits.target)
    net = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    model = lw.setup(
        net, loss=nn.CrossEntropyLoss(), optimizer=torch.optim.Adam,
        metrics=[lw.metrics.Accuracy()],
    ).set_opt_hparams(lr=1e-3)  # fmt: skip
    run = model.run((x, y), epochs=40, valid_data=0.2, verbose=False)
    return mo, run


@app.cell
def _(mo, run):
    dashboard = mo.ui.anywidget(run.dashboard())
    dashboard  # noqa: B018  (marimo shows a cell's last expression)
    return


@app.cell
def _(mo, run):
    mo.md(
        f"""
        Click **Start** above; the run trains in a background thread while marimo stays
        live. `run.state` is **{run.state}** when this cell ran.
        """
    )
    return


if __name__ == "__main__":
    app.run()

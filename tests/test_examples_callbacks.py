"""examples/callbacks_and_resume.ipynb runs top to bottom in a real kernel and shows what its
text promises: early stopping, checkpoints, an exact resume, the LR finder plot."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).parents[1] / "examples" / "callbacks_and_resume.ipynb"


def text_of(cell) -> str:
    return "".join(
        o.get("text", "") or o.get("data", {}).get("text/plain", "")
        for o in cell.get("outputs", [])
    )


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    probe = nbformat.v4.new_code_cell("import sys; print(sys.executable)")
    nb.cells.append(probe)
    client = NotebookClient(
        nb,
        timeout=180,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path_factory.mktemp("nb"))}},
    )
    client.execute()  # raises CellExecutionError with the failing cell on any error
    return nb


def test_runs_in_this_environment(executed):
    assert Path(text_of(executed.cells[-1]).strip()).resolve() == Path(sys.executable).resolve()


def test_shows_what_it_explains(executed):
    out = "\n".join(text_of(c) for c in executed.cells if c.cell_type == "code")
    assert "<LRFinderResult" in out
    assert "suggested learning rate:" in out
    assert "stopped at epoch" in out
    assert "keys: ['batch_size', 'callbacks', 'epoch', 'loaders', 'luzwidget', 'model', " in out
    assert "checkpoint exists: True" in out
    assert "resumed after epoch 2" in out
    assert "epochs in the records: 5" in out
    assert "checkpoint deleted: True" in out
    assert "bit-identical to an uninterrupted run: True" in out
    plots = [
        o
        for c in executed.cells
        for o in c.get("outputs", [])
        if "application/vnd.plotly.v1+json" in o.get("data", {})
    ]
    assert len(plots) == 2  # the LR finder and the metrics


def test_early_stopping_really_stopped_early(executed):
    out = "\n".join(text_of(c) for c in executed.cells if c.cell_type == "code")
    line = next(x for x in out.splitlines() if x.startswith("stopped at epoch"))
    stopped = int(line.split()[3].rstrip(";"))
    assert 1 < stopped < 50


def test_is_committed_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    assert nb.metadata["kernelspec"]["name"] == "python3"

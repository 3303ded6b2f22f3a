"""Every notebook in examples/ runs top to bottom in a real kernel (nbclient), as users do."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

EXAMPLES = sorted((Path(__file__).parents[1] / "examples").glob("*.ipynb"))
DEDICATED = {"callbacks_and_resume"}  # run, and their outputs checked, by test_examples_callbacks


@pytest.mark.parametrize(
    "path", [p for p in EXAMPLES if p.stem not in DEDICATED], ids=lambda p: p.stem
)
def test_example_runs_top_to_bottom(path: Path, tmp_path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    # A last cell proves the kernel is this interpreter (the project's environment).
    probe = nbformat.v4.new_code_cell("import sys; print(sys.executable)")
    nb.cells.append(probe)
    client = NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error
    assert Path(probe.outputs[0]["text"].strip()).resolve() == Path(sys.executable).resolve()


def test_the_documented_examples_exist() -> None:
    assert {"quickstart", "step_through"} <= {p.stem for p in EXAMPLES}

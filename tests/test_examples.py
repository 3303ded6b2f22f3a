"""Every notebook in examples/ runs top to bottom in a real kernel (nbclient), as users do."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

# Not the executed copies the README's main job writes (examples/quickstart_executed.ipynb).
EXAMPLES = sorted(
    p
    for p in (Path(__file__).parents[1] / "examples").glob("*.ipynb")
    if not p.stem.endswith("_executed")
)
DEDICATED = {"callbacks_and_resume", "playground"}  # run, outputs checked: test_examples_<name>


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


def test_the_examples_are_the_five_notebooks() -> None:
    assert [p.stem for p in EXAMPLES] == [
        "callbacks_and_resume",
        "playground",
        "quickstart",
        "step_through",
        "transformer_classifier",
    ]


def test_the_documented_examples_exist() -> None:
    assert {"quickstart", "step_through"} <= {p.stem for p in EXAMPLES}


def test_the_readme_main_job_writes_the_executed_copy_and_keeps_the_source(
    tmp_path: Path,
) -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    command = next(line for line in readme.splitlines() if "jupyter execute" in line)
    job = shlex.split(command.split("&&")[-1])  # .venv/bin/jupyter execute NOTEBOOK --output=..
    assert job[1:3] == ["execute", "examples/quickstart.ipynb"], job
    source = Path(__file__).parents[1] / job[2]
    shutil.copy(source, tmp_path / source.name)
    jupyter = Path(sys.executable).with_name("jupyter")
    subprocess.run(
        [str(jupyter), *job[1:2], str(tmp_path / source.name), *job[3:]],
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert (tmp_path / source.name).read_bytes() == source.read_bytes()  # the source untouched
    executed = nbformat.read(tmp_path / "quickstart_executed.ipynb", as_version=4)
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code)
    assert any(c.outputs for c in code)

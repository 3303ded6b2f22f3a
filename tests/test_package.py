"""The package as a user imports it: the public names, and a headless core without widgets."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import luzwidget as lw

PACKAGE = Path(lw.__file__).parent

# Train, step and save with the headless core, then list the widget libraries that got loaded.
HEADLESS = """
import sys, tempfile, torch
import luzwidget as lw

spec = lw.setup(torch.nn.Linear(3, 1), loss=torch.nn.MSELoss(), optimizer=torch.optim.SGD)
spec = spec.set_opt_hparams(lr=0.1)
data = (torch.randn(64, 3), torch.randn(64, 1))
fitted = spec.fit(data, epochs=2, valid_data=0.25, verbose=True)
run = spec.run(data, epochs=1, verbose=False)
run.breakpoints.add(lw.Event.on_train_batch_after_loss)
run.step("batch")
run.breakpoints.clear()
run.resume()
with tempfile.TemporaryDirectory() as d:
    lw.save(fitted, d + "/f.pt")
    lw.load(d + "/f.pt", setup=spec)
widgets = {"ipywidgets", "anywidget", "plotly", "IPython", "ipykernel"}
print(sorted(m for m in sys.modules if m.split(".")[0] in widgets))
"""


def test_every_public_name_exists_and_is_documented() -> None:
    assert lw.__all__ == sorted(lw.__all__)
    for name in lw.__all__:
        obj = getattr(lw, name)
        assert (obj.__doc__ or "").strip(), f"luzwidget.{name} has no docstring"


def test_the_headless_core_loads_no_widget_library() -> None:
    out = subprocess.run(
        [sys.executable, "-c", HEADLESS], capture_output=True, text=True, timeout=300, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr


def test_the_package_ships_its_type_marker_and_built_front_end() -> None:
    assert (PACKAGE / "py.typed").is_file()
    for bundle in ("dashboard.js", "plotly.js"):
        assert (PACKAGE / "static" / bundle).stat().st_size > 1000, bundle


def _map() -> dict[str, str]:
    """README's "How it is built" map: each entry (``name.py`` or ``name/``) and its text."""
    readme = (PACKAGE.parent / "README.md").read_text()
    block = readme.split("## How it is built", 1)[1].split("```", 2)[1]
    entries: dict[str, str] = {}
    for name, text in re.findall(r"^  (\w+(?:\.py|/)) +(.*(?:\n {4,}.*)*)", block, re.M):
        assert name not in entries, f"{name} is in README's map twice"
        entries[name] = text
    return entries


def test_the_readme_map_names_every_module_once() -> None:
    entries = _map()
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.name == "__init__.py":
            continue
        if len(rel.parts) == 1:
            assert rel.name in entries, f"{rel} is not in README's map"
            continue
        text = entries.get(f"{rel.parts[0]}/", "")
        found = re.findall(rf"(?<![\w.]){re.escape(rel.stem)}(?![\w])", text)
        assert len(found) == 1, f"{rel} is not named once in README's map"


def test_each_module_imports_only_modules_the_map_lists_above_it() -> None:
    order = [name.removesuffix(".py").removesuffix("/") for name in _map()]
    position = {name: i for i, name in enumerate(order)}
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        here = rel.parts[0].removesuffix(".py")
        if here == "__init__":
            continue
        for node in ast.parse(path.read_text()).body:  # what runs when it is imported
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("luzwidget"):
                module = (node.module or "").removeprefix("luzwidget").removeprefix(".")
                for name in [module] if module else [a.name for a in node.names]:
                    there = name.split(".")[0]
                    if there != here and position.get(there, len(order)) > position[here]:
                        upward.append(f"{rel} imports {name}")
    assert upward == []

"""The package as a user imports it: the public names, and a headless core without widgets."""

from __future__ import annotations

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

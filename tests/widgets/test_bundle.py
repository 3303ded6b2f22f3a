"""The committed front-end bundles are exactly what js/src builds to (and are small)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
JS = ROOT / "js"
STATIC = ROOT / "luzwidget" / "static"
BUNDLES = ("plotly.js", "dashboard.js", "dashboard.css")


def test_bundles_are_committed_and_small() -> None:
    sizes = {name: (STATIC / name).stat().st_size for name in BUNDLES}
    assert sizes["plotly.js"] < 1_400_000  # the basic plotly.js bundle, once per page
    assert sizes["dashboard.js"] < 60_000  # sent with every dashboard
    assert sizes["dashboard.css"] < 30_000
    assert b"cdn" not in (STATIC / "dashboard.js").read_bytes().lower()


def test_bundles_match_the_sources(tmp_path: Path) -> None:
    node = shutil.which("node")
    ready = node is not None and (JS / "node_modules" / "esbuild").is_dir()
    if not ready:
        if os.environ.get("CI", "").lower() in ("1", "true"):
            pytest.fail("CI must check the bundles: run `cd js && npm ci` first.")
        pytest.skip("needs node and `cd js && npm ci`")
    subprocess.run(
        [node, "build.mjs", "--outdir", str(tmp_path)], cwd=JS, check=True, capture_output=True
    )
    for name in BUNDLES:
        built, committed = (tmp_path / name).read_bytes(), (STATIC / name).read_bytes()
        assert built == committed, (
            f"luzwidget/static/{name} is stale: run `cd js && npm ci && npm run build` "
            "and commit the result."
        )

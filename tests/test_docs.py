"""The docs: the site builds with ``mkdocs build --strict``, every public name is in the API
reference, the getting-started code runs, and the README's and CONTRIBUTING's links lead to
files that exist.

The build needs the ``dev`` extra (mkdocs-material, mkdocstrings); where it is missing the
build test skips with the reason, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PUBLIC_MODULES = ("luzwidget", "luzwidget.callbacks", "luzwidget.metrics", "luzwidget.distributed")
# Returned to users though not in an __all__: what lw.attach and run(processes=N) return.
RETURNED = ("luzwidget.remote.proxy.Attached", "luzwidget.launch.Launched")
ROLE = re.compile(r":(class|func|meth|mod|attr|data|exc):`")


def _on_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


def _require_mkdocs() -> None:
    missing = [m for m in ("mkdocs", "material", "mkdocstrings") if not importlib.util.find_spec(m)]
    if not missing:
        return
    reason = f"{', '.join(missing)} not installed (pip install -e '.[dev]')"
    if _on_ci():
        pytest.fail(f"the docs cannot be built on CI: {reason}", pytrace=False)
    pytest.skip(reason)


def _resolve(path: str) -> Any:
    """The object at a dotted path: the longest importable module, then attributes."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for name in parts[i:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(path)


def _documented() -> list[Any]:
    """Every object a ``::: path`` directive of docs/reference/ renders."""
    paths = re.findall(r"^::: (\S+)", _reference_text(), flags=re.MULTILINE)
    return [_resolve(p) for p in paths]


def _reference_text() -> str:
    return "\n".join(p.read_text() for p in sorted((DOCS / "reference").glob("*.md")))


def _public() -> dict[str, Any]:
    """``module.name`` -> object, for every name of the public modules' ``__all__``."""
    out: dict[str, Any] = {}
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            out[f"{module_name}.{name}"] = getattr(module, name)
    for path in RETURNED:
        out[path] = _resolve(path)
    return out


def test_every_public_name_is_in_the_api_reference() -> None:
    documented = _documented()
    missing = [name for name, obj in _public().items() if not any(obj is d for d in documented)]
    assert missing == [], f"add a '::: NAME' line to a page of docs/reference/ for {missing}"


def test_every_public_name_has_a_docstring() -> None:
    bare = [name for name, obj in _public().items() if not (inspect.getdoc(obj) or "").strip()]
    assert bare == []


def test_public_modules_are_documented_as_modules() -> None:
    documented = _documented()
    for name in ("luzwidget.callbacks", "luzwidget.metrics", "luzwidget.distributed"):
        module = importlib.import_module(name)
        assert isinstance(module, ModuleType)
        assert any(module is d for d in documented), name


def test_the_site_builds_strict_with_no_warning(tmp_path: Path) -> None:
    _require_mkdocs()
    site = tmp_path / "site"
    out = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    assert "WARNING" not in log, log[-4000:]
    run_page = (site / "reference" / "run" / "index.html").read_text()
    assert 'id="luzwidget.Run.step"' in run_page
    # Sphinx roles in docstrings became links (docs/_ext/sphinx_roles.py), none left as text.
    assert 'href="#luzwidget.Run.step"' in run_page
    pages = [p.read_text() for p in site.rglob("*.html")]
    assert not [m.group(0) for page in pages for m in ROLE.finditer(page)]
    assert (site / "dashboard.png").is_file()
    assert not (site / "_ext").exists()


def test_the_getting_started_code_runs() -> None:
    text = (DOCS / "getting-started.md").read_text().split("## The dashboard")[0]
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert len(blocks) == 2
    scope: dict[str, Any] = {}
    exec(compile("\n".join(blocks), "getting-started.md", "exec"), scope)
    assert scope["fitted"].ctx.epoch == 15  # 10 epochs, then 5 more
    assert set(scope["fitted"].get_metrics()["metric"]) == {"loss", "acc"}


def test_readme_and_contributing_links_lead_to_files() -> None:
    for doc in ("README.md", "CONTRIBUTING.md"):
        text = (ROOT / doc).read_text()
        links = re.findall(r"\]\(([^)\s]+)\)", text)
        local = [link.split("#")[0] for link in links if "://" not in link]
        assert local, doc
        broken = [link for link in local if not (ROOT / link).exists()]
        assert broken == [], f"{doc}: {broken}"


def _nav_hook() -> Any:
    spec = importlib.util.spec_from_file_location("docs_nav_hook", DOCS / "_ext" / "nav.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_guide_page_missing_from_the_nav_is_appended_to_the_guide(tmp_path: Path) -> None:
    (tmp_path / "guide").mkdir()
    for name in ("b.md", "a.md", "listed.md"):
        (tmp_path / "guide" / name).write_text("# x\n")
    nav = [{"Home": "index.md"}, {"User guide": ["guide/listed.md"]}, {"API": ["r.md"]}]
    config = SimpleNamespace(nav=nav, docs_dir=str(tmp_path))
    _nav_hook().on_config(config)
    assert config.nav == [
        {"Home": "index.md"},
        {"User guide": ["guide/listed.md", "guide/a.md", "guide/b.md"]},
        {"API": ["r.md"]},
    ]

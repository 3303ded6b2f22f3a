"""A mkdocs hook: every ``docs/guide/*.md`` is in the nav's "User guide" section.

Pages listed in ``mkdocs.yml`` keep their place; a guide page not listed there (one added
on another branch) is appended to the section, in name order, so no guide page is ever
left out of the nav. Loaded through ``hooks`` in ``mkdocs.yml``; not part of the package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SECTION = "User guide"


def on_config(config: Any, **kwargs: Any) -> Any:
    """Append the unlisted guide pages to the "User guide" section of ``config.nav``."""
    for entry in config.nav or []:
        if isinstance(entry, dict) and SECTION in entry:
            pages = entry[SECTION]
            listed = {_path(page) for page in pages}
            guide = Path(config.docs_dir) / "guide"
            for path in sorted(guide.glob("*.md")):
                name = f"guide/{path.name}"
                if name not in listed:
                    pages.append(name)
    return config


def _path(page: Any) -> Any:
    """The file of one nav entry: ``"guide/x.md"`` or ``{"Title": "guide/x.md"}``."""
    if isinstance(page, dict):
        return next(iter(page.values()))
    return page

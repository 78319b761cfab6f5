"""Every relative link in README.md and docs/*.md leads somewhere: a file or folder of this
checkout (or of ``../shared`` beside it), and a ``#fragment`` to a heading of that page."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "assets").glob("*.md"))]
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"```.*?```", re.S)


def links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text())  # links inside code blocks are examples, not links
    return [target for target in LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:", target)]


def anchors(page: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces as hyphens."""
    found = set()
    for line in FENCE.sub("", page.read_text()).splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


def test_the_pages_have_links():
    assert len(PAGES) >= 10 and sum(len(links(p)) for p in PAGES) >= 20


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in links(page):
        path, _, fragment = target.partition("#")
        file = (page.parent / unquote(path)).resolve() if path else page
        if not file.exists():
            if "shared" in file.parts and not (REPO.parent / "shared").exists():
                continue  # ../shared is beside the checkout in CI and here; a bare clone lacks it
            broken.append(target)
        elif fragment and file.suffix == ".md" and fragment not in anchors(file):
            broken.append(target)
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page: Path):
    assert not broken_links(page), page.name


def test_a_broken_link_or_anchor_is_caught(tmp_path: Path):
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](page.md) [gone](missing.md) [anchor](#nowhere) [here](#a-heading) ![img](x.png)\n"
        "```\n[in code](nothing.md)\n```\n# A heading\n"
    )
    assert broken_links(page) == ["missing.md", "#nowhere", "x.png"]

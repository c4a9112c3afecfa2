"""The docs stand alone and stay true to the code: every sync rule the code cites (`R8`, `R1-R16`) has its
section in docs/sync-rules.md, every `docs/<page>.md[#anchor]` the code names exists, every relative link of
README.md and docs/ resolves, README.md stays short, and docs/data-model.md is what the schema generates."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from taxdome_qbo import data_model_doc

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CODE_DIRS = ("plugins", "dags", "include", "qbo_emulator")
CODE_SUFFIXES = {".py", ".sql", ".md", ".txt", ".json", ".yaml", ".yml", ".html"}
README_MAX_LINES = 150
SYNC_RULES = 21

RULE = re.compile(r"\bR(\d{1,2})(?:\s*[-–]\s*R(\d{1,2}))?\b")
DOC_REFERENCE = re.compile(r"\bdocs/([a-z0-9_-]+\.md)(?:#([a-z0-9_-]+))?")
RULE_HEADING = re.compile(r"^## R(\d{1,2}) — \S", re.MULTILINE)
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation other than `-` and `_` dropped, spaces to `-`."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    found: set[str] = set()
    for match in re.finditer(r"^#{1,6} (.+)$", text, re.MULTILINE):
        base = slug(match.group(1))
        name, n = base, 1
        while name in found:  # GitHub numbers repeated headings: name, name-1, name-2
            name, n = f"{base}-{n}", n + 1
        found.add(name)
    return found


def code_files() -> list[Path]:
    files = []
    for directory in CODE_DIRS:
        for path in sorted((ROOT / directory).rglob("*")):
            if path.is_file() and path.suffix in CODE_SUFFIXES and "__pycache__" not in path.parts:
                files.append(path)
    return files


def rules_cited(text: str) -> set[int]:
    cited: set[int] = set()
    for match in RULE.finditer(text):
        first = int(match.group(1))
        last = int(match.group(2) or first)
        cited.update(range(first, last + 1))
    return cited


def rule_sections() -> set[int]:
    return {int(n) for n in RULE_HEADING.findall((DOCS / "sync-rules.md").read_text(encoding="utf-8"))}


def missing_doc_references(text: str) -> list[str]:
    missing = []
    for match in DOC_REFERENCE.finditer(text):
        page, anchor = DOCS / match.group(1), match.group(2)
        if not page.is_file() or (anchor and anchor not in anchors(page)):
            missing.append(match.group(0))
    return missing


def broken_links(page: Path) -> list[str]:
    text = CODE_SPAN.sub("", FENCE.sub("", page.read_text(encoding="utf-8")))
    broken = []
    for match in LINK.finditer(text):
        target = match.group(1) or match.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: …
            continue
        path_part, _, anchor = target.partition("#")
        linked = (page.parent / path_part).resolve() if path_part else page
        if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in anchors(linked)):
            broken.append(target)
    return broken


def test_every_sync_rule_has_its_section():
    assert rule_sections() == set(range(1, SYNC_RULES + 1))


def test_every_rule_the_code_cites_is_documented():
    sections = rule_sections()
    undocumented = {
        f"{path.relative_to(ROOT)}: R{n}"
        for path in code_files()
        for n in rules_cited(path.read_text(encoding="utf-8", errors="replace"))
        if n not in sections
    }
    assert not undocumented


def test_every_docs_page_the_code_names_exists():
    missing = {
        f"{path.relative_to(ROOT)}: {reference}"
        for path in code_files()
        for reference in missing_doc_references(path.read_text(encoding="utf-8", errors="replace"))
    }
    assert not missing


def test_the_code_cites_no_spec_sections():
    """The product spec is not shipped: the code cites the docs that now hold its content."""
    citing = [str(p.relative_to(ROOT)) for p in code_files() if "SPEC §" in p.read_text(errors="replace")]
    assert not citing


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES


@pytest.mark.parametrize(
    "page", [ROOT / "README.md", *sorted(DOCS.glob("*.md"))], ids=lambda p: str(p.relative_to(ROOT))
)
def test_relative_links_resolve(page):
    assert not broken_links(page)


def test_the_data_model_page_is_generated_from_the_schema():
    committed = (DOCS / "data-model.md").read_text(encoding="utf-8")
    assert committed == data_model_doc.render(), (
        "docs/data-model.md is stale: python -m taxdome_qbo.data_model_doc > docs/data-model.md"
    )


def test_the_checks_catch_bad_references(tmp_path):
    """The checks themselves: a cited rule without a section, a missing page or anchor, a broken link."""
    assert rules_cited("R3-R5, R16 and R8") == {3, 4, 5, 8, 16}
    assert 22 not in rule_sections()
    assert missing_doc_references("see docs/no-such-page.md") == ["docs/no-such-page.md"]
    assert missing_doc_references("see docs/sync-rules.md#r99--nothing") == [
        "docs/sync-rules.md#r99--nothing"
    ]
    assert (
        missing_doc_references(
            "see docs/sync-rules.md#r8--services-become-service-items-by-when-they-appeared"
        )
        == []
    )
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n## A section\n\n[ok](#a-section) [gone](#nowhere) [file](missing.md)\n")
    assert broken_links(page) == ["#nowhere", "missing.md"]

"""The documentation stands on its own: it names only files of this repository, and its
walk-throughs do what the protocols require."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Backticked paths into the tree: `docs/osmp.md`, `deploy/nginx.conf`, `bench/chaos.py`, …
_PATH = re.compile(r"`((?:docs|deploy|bench|sql|src|tests)/[\w./-]+\.\w+)`")


def test_docs_name_no_file_outside_the_repository() -> None:
    """No page points at notes kept outside the repository or at a parent directory."""
    outside = re.compile(r"protocols\.md|interfaces\.md|house-style|performance-notes|\]\(\.\./")
    found = [f"{doc.name}: {m.group(0)}" for doc in DOCS for m in outside.finditer(doc.read_text())]
    assert found == []


def test_files_the_docs_name_exist() -> None:
    """Every repository path a page names in backticks is there."""
    missing = [
        f"{doc.name}: {path}"
        for doc in DOCS
        for path in _PATH.findall(doc.read_text())
        if "*" not in path and not (ROOT / path).exists()
    ]
    assert missing == []


def test_click_walk_through_completes_with_the_id_prepare_answered() -> None:
    """The Complete of docs/click.md signs and sends the merchant_prepare_id its Prepare answered."""
    text = (ROOT / "docs" / "click.md").read_text()
    walk = text[text.index("## Walk-through with curl") :]
    walk = walk[: walk.index("\n## ", 1)]
    assert "PREPARE_ID=$(" in walk and "prepare.json" in walk
    assert "merchant_prepare_id=$PREPARE_ID" in walk
    assert "${CODE}${PREPARE_ID}1000.001" in walk
    assert not re.search(r"merchant_prepare_id=\d", walk)

"""The committed build of the web UI (src/waypost/ui/dist) is the build of the current sources in
ui/: the build records a hash of them (ui/build-info.mjs), and this test computes it again."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "ui"
DIST = ROOT / "src" / "waypost" / "ui" / "dist"


def source_files(directory: Path) -> list[Path]:
    """What ui/build-info.mjs hashes: every file of ui/ but node_modules and dot files."""
    found: list[Path] = []
    for entry in directory.iterdir():
        if entry.name == "node_modules" or entry.name.startswith("."):
            continue
        found.extend(source_files(entry) if entry.is_dir() else [entry])
    return found


def sources_sha256() -> str:
    names = sorted(path.relative_to(SOURCES).as_posix() for path in source_files(SOURCES))
    digest = hashlib.sha256()
    for name in names:
        content = hashlib.sha256((SOURCES / name).read_bytes()).hexdigest()
        digest.update(f"{name}\0{content}\n".encode())
    return digest.hexdigest()


def test_the_committed_build_is_the_build_of_the_current_sources() -> None:
    recorded = json.loads((DIST / "build-info.json").read_text())
    assert recorded["sources_sha256"] == sources_sha256(), (
        "src/waypost/ui/dist was built from other sources than ui/ holds now: run `make ui`"
    )


def test_the_build_has_its_page_and_every_asset_it_names() -> None:
    page = (DIST / "index.html").read_text()
    for asset in ("assets/index-",):
        assert f'"./{asset}' in page
    for path in (DIST / "assets").iterdir():
        assert f"./assets/{path.name}" in page, f"{path.name} is built but not referenced"

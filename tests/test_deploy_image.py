"""The image's tree builds: what deploy/Dockerfile copies is enough to install duragent.

Docker cannot run here, so the build context is made the way BuildKit makes it: the
files ``deploy/Dockerfile.dockerignore`` lets through, placed where the Dockerfile's
``COPY`` lines put them. The project is then built from that tree alone, as the image's
``uv sync`` builds it. A folder the package needs but the image leaves out (as
``duragent/`` was, when the code moved under it) fails here, not at a deploy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
IGNORE = ROOT / "deploy" / "Dockerfile.dockerignore"


def copied() -> list[tuple[str, str]]:
    """``(source, destination)`` of the Dockerfile's COPY lines from the build context."""
    pairs: list[tuple[str, str]] = []
    for line in DOCKERFILE.read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            *sources, destination = words[1:]
            pairs.extend((source, destination) for source in sources)
    return pairs


def allowed(path: str) -> bool:
    """Whether the dockerignore's allow-list (``**`` then ``!`` entries) lets it through."""
    patterns = [p[1:] for p in IGNORE.read_text().splitlines() if p.startswith("!")]
    return any(p in (path, f"{path}/**") for p in patterns)


def test_every_copied_path_is_in_the_build_context() -> None:
    sources = [source for source, _ in copied()]
    assert "duragent" in sources
    refused = [source for source in sources if not allowed(source)]
    assert not refused, f"the dockerignore keeps these out of the build context: {refused}"


def test_the_images_tree_builds_the_package(tmp_path: Path) -> None:
    uv = os.environ.get("UV") or shutil.which("uv") or str(Path.home() / ".local/bin/uv")
    if not Path(uv).exists():
        pytest.skip("uv is not installed")
    app = tmp_path / "app"
    app.mkdir()
    for source, destination in copied():
        target = app / destination.removeprefix("./")
        if (ROOT / source).is_dir():
            shutil.copytree(ROOT / source, target, symlinks=True)
        else:
            shutil.copy(ROOT / source, app / source if destination == "./" else target)
    done = subprocess.run(
        [uv, "build", "--wheel", "--out-dir", str(tmp_path / "dist"), str(app)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    [wheel] = (tmp_path / "dist").glob("duragent-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "duragent/workflows/agent.py" in names and "duragent/worker/cli.py" in names

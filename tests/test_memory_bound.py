"""Indexing streams pages: at most one encoder batch of page images is alive at any time, and peak
memory on a 1000-page PDF stays near that of a 100-page one (slow: `pytest -m slow`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.builders import write_pdf

# integration: indexing long PDFs in subprocesses
pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import resource, sys
from pathlib import Path
from tokensearch.engine import Engine
from tokensearch.settings import Settings
with Engine(Settings(home=Path(sys.argv[2]), text_layer="off", batch_size=4)) as eng:
    eng.encoder
    rep = eng.index(Path(sys.argv[1]))
    assert rep.pages_vision == int(sys.argv[3]), rep
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _pdf(path: Path, pages: int) -> None:
    # small pages: the test is about count, not size
    lines = ([f"page {i} of the long report", f"line two REF-{i:05d}"] for i in range(pages))
    write_pdf(path, lines, width=180, height=120, fontsize=9, x=10, y=40, leading=30)


def _peak_kb(tmp: Path, pages: int) -> int:
    folder = tmp / f"docs{pages}"
    folder.mkdir()
    _pdf(folder / "long.pdf", pages)
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(folder), str(tmp / f"home{pages}"), str(pages)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": ""},
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return int(out.stdout.strip().splitlines()[-1])


def test_at_most_one_batch_of_page_images_is_alive(tmp_path, mini_encoder, monkeypatch):
    import weakref

    from tokensearch.indexer import sources

    alive: set[int] = set()
    peak = [0]
    real_render = sources.render_pdf_page

    def tracked_render(page, dpi, grey=False):
        img = real_render(page, dpi, grey)
        key = id(img)
        alive.add(key)
        peak[0] = max(peak[0], len(alive))
        weakref.finalize(img, alive.discard, key)
        return img

    monkeypatch.setattr(sources, "render_pdf_page", tracked_render)
    (tmp_path / "docs").mkdir()
    _pdf(tmp_path / "docs" / "long.pdf", 40)
    from tokensearch.engine import Engine
    from tokensearch.settings import Settings

    with Engine(Settings(home=tmp_path / "home", text_layer="off", batch_size=4), encoder=mini_encoder) as eng:
        rep = eng.index(tmp_path / "docs")
    assert rep.pages_vision == 40
    # the batch being encoded, the one page the reading thread hands ahead, the one it is rendering
    assert peak[0] <= 4 + 2, peak[0]


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_page_count(tmp_path):
    small = _peak_kb(tmp_path, 100)
    large = _peak_kb(tmp_path, 1000)
    # 900 more rasterised pages held in memory would add > 50 MB (each ~65 kB as RGB, plus features)
    assert large - small < 40_000, (small, large)

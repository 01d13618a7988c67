"""The sample folder (``tokensearch.samples``) built once a test run and copied where a test wants one.

Building it renders and rasterises PDFs and draws a phone photo, ~3 s each time, and some forty tests
each want a fresh folder they may change. The build is seeded: a copy holds the bytes a new build
would write, but for the PDFs' trailer ID, which PyMuPDF draws at random."""

from __future__ import annotations

import atexit
import copy
import functools
import shutil
import tempfile
from dataclasses import fields, replace
from pathlib import Path

from tokensearch.samples import SampleFolder, make_sample_folder


@functools.cache
def _built() -> SampleFolder:
    tmp = Path(tempfile.mkdtemp(prefix="tokensearch-sample-"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    return make_sample_folder(tmp / "docs")


def copy_sample(root: Path) -> SampleFolder:
    """A sample folder at ``root`` (created, with its parents): the files and the true boxes."""
    src = _built()

    def moved(p: Path) -> Path:
        return root / p.relative_to(src.root)

    root.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src.root, root)
    changes: dict[str, object] = {}
    for f in fields(src):
        v = getattr(src, f.name)
        if isinstance(v, Path):
            changes[f.name] = moved(v)
        elif isinstance(v, list) and v and isinstance(v[0], Path):
            changes[f.name] = [moved(p) for p in v]
        else:
            changes[f.name] = copy.deepcopy(v)
    return replace(src, **changes)

"""Shared fixtures: the embedded model loaded once, sample documents, engines on the parametrised database."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sample_copies import copy_sample
from tests.storage_fixtures import db_url, vector_backend  # noqa: F401  (sqlite + postgresql; faiss + milvus)
from tokensearch.engine import Engine
from tokensearch.samples import SampleFolder
from tokensearch.settings import Settings


@pytest.fixture(scope="session")
def mini_encoder():
    """The embedded default model, loaded once for the whole run (it is read-only)."""
    from tokensearch.tokenocr_model import create_encoder

    return create_encoder("mini")


@pytest.fixture
def sample(tmp_path) -> SampleFolder:
    return copy_sample(tmp_path / "docs")


@pytest.fixture
def make_engine(tmp_path, db_url, mini_encoder):
    """``make_engine(**settings)`` -> an Engine on a fresh home and the parametrised database."""
    engines: list[Engine] = []

    def _make(home: Path | None = None, **kw) -> Engine:
        s = Settings(home=home or tmp_path / "home", database_url=db_url, **kw)
        eng = Engine(s, encoder=mini_encoder)
        engines.append(eng)
        return eng

    yield _make
    for e in engines:
        e.close()

"""Searching uses the model's cached query half (no vision model, no torch) when it is current."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tokensearch.engine import QUERY_SIDE_FILE, Engine
from tokensearch.settings import Settings
from tokensearch.tokenocr_model.mini_files import WEIGHTS_DIR

# integration: indexing with the vision model, then searching
pytestmark = pytest.mark.integration


def test_search_after_index_does_not_load_the_vision_model(tmp_path, sample, mini_encoder):
    home = tmp_path / "home"
    with Engine(Settings(home=home), encoder=mini_encoder) as eng:
        eng.index(sample.born_digital)
        expected = eng.search("committee").hits
    assert (home / QUERY_SIDE_FILE).is_file()
    with Engine(Settings(home=home)) as fresh:
        got = fresh.search("committee").hits
        assert fresh._encoder is None  # noqa: SLF001  (the point of the cache)
    assert [(h.path, h.page, h.boxes) for h in got] == [(h.path, h.page, h.boxes) for h in expected]


def test_cached_query_side_embeds_like_the_model(mini_encoder):
    side = mini_encoder.query_side()
    for q in ["INV-2023-0042", "harbour crane", "11/12/2020"]:
        a, b = side.embed_query(q), mini_encoder.embed_query(q)
        assert a.tokens == b.tokens
        np.testing.assert_allclose(a.vectors, b.vectors, rtol=0, atol=1e-6)


def test_changed_weight_files_invalidate_the_cache(tmp_path, sample, mini_encoder):
    weights = tmp_path / "weights"
    shutil.copytree(WEIGHTS_DIR, weights)
    home = tmp_path / "home"
    spec = f"mini:{weights}"
    with Engine(Settings(home=home, model=spec)) as eng:
        eng.index(sample.born_digital)
    with Engine(Settings(home=home, model=spec)) as eng:
        assert eng._cached_query_side() is not None  # noqa: SLF001
        (weights / "tokenizer.json").touch()  # same bytes, newer file: not provably the same model
        assert eng._cached_query_side() is None  # noqa: SLF001
    with Engine(Settings(home=home, model="mini")) as eng:  # another model spec
        assert eng._cached_query_side() is None  # noqa: SLF001
    assert Path(home / QUERY_SIDE_FILE).is_file()

"""The TokenEncoder contract (tokensearch/tokenocr_model/interface.py), checked on every model the registry
builds: feature grids of the shape ``grid_shape`` announces, finite unit vectors (no NaN, blank pages
included), the same features for the same page every time and whether encoded in a batch or alone, and
finite unit query vectors. The official ``tokenocr`` model runs on a tiny checkpoint in the official
format (tests/tokenocr_factory.py); tiny pages keep the module to about a second."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.tokenocr_factory import make_tiny_checkpoint
from tokensearch.tokenocr_model import TokenEncoder, create_encoder
from tokensearch.tokenocr_model.interface import FeatureGrid
from tokensearch.tokenocr_model.registry import available_models

# registry name -> the spec that builds it for a test (given a scratch folder); a model added to the
# registry without an entry here fails test_every_registered_model_is_covered
SPECS: dict[str, Callable[[Path], str]] = {
    "mini": lambda tmp: "mini",
    "tokenocr": lambda tmp: f"tokenocr:{make_tiny_checkpoint(tmp)}",
}
QUERIES = ["Invoice 2020", "INV-2023-0042 total", "a", "发票"]


def _text_page(size: tuple[int, int], text: str, mode: str = "RGB") -> Image.Image:
    img = Image.new("RGB", size, "white")
    ImageDraw.Draw(img).text((6, 6), text, fill="black")
    return img.convert(mode)


# small pages of several sizes and modes (two alike, which a model may batch together), and blank ones
PAGES = [
    _text_page((160, 90), "Invoice 2020"),
    _text_page((70, 150), "Total", "L"),
    _text_page((160, 90), "harbour crane"),
    _text_page((33, 21), "ab", "RGBA"),
    Image.new("L", (50, 40), 255),
    Image.new("RGB", (40, 50), "black"),
    Image.new("L", (1, 1), 0),
]


def test_every_registered_model_is_covered():
    assert set(available_models()) == set(SPECS), "add how to build each registered model to SPECS"


@pytest.fixture(scope="module", params=available_models())
def encoder(request, tmp_path_factory) -> TokenEncoder:
    name = request.param
    if name not in SPECS:
        pytest.fail(f"registered model {name!r} has no entry in SPECS", pytrace=False)
    if name == "mini":
        return request.getfixturevalue("mini_encoder")  # conftest's, loaded once per run
    enc = create_encoder(SPECS[name](tmp_path_factory.mktemp(name)))
    assert enc.info.family == name
    return enc


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    tol = 2e-3 if np.float16 in (a.dtype, b.dtype) else 1e-4
    return bool(np.abs(a.astype(np.float32) - b.astype(np.float32)).max() <= tol)


def _check_units(x: np.ndarray, what: str) -> None:
    tol = 2e-3 if x.dtype == np.float16 else 1e-4
    x = x.astype(np.float32)
    assert np.isfinite(x).all(), f"{what}: not finite"
    norms = np.linalg.norm(x, axis=-1)
    assert np.abs(norms - 1).max() <= tol, f"{what}: norms in [{norms.min()}, {norms.max()}]"


def test_a_model_that_reads_grey_reads_a_colour_page_as_its_grey_copy(encoder):
    # the indexer hands a model announcing ``grey`` its pages as one channel: it must read them alike
    assert isinstance(encoder.grey, bool)
    page = Image.new("RGB", (160, 90), (250, 240, 200))
    ImageDraw.Draw(page).text((6, 6), "Invoice 2020", fill=(150, 20, 40))
    if encoder.grey:
        colour, grey = encoder.encode_pages([page, page.convert("L")])
        assert _close(colour.features, grey.features)


def test_grids_have_the_announced_shape_and_finite_unit_features(encoder):
    grids = encoder.encode_pages(PAGES)
    assert len(grids) == len(PAGES) and all(isinstance(g, FeatureGrid) for g in grids)
    for img, g in zip(PAGES, grids):
        what = f"{encoder.info.name} {img.mode} {img.size}"
        h, w = encoder.grid_shape(*img.size)
        assert h >= 1 and w >= 1
        assert g.features.shape == (h, w, encoder.info.dim) and g.shape == (h, w), what
        assert g.features.dtype in (np.float32, np.float16), what
        _check_units(g.features, what)
        assert g.text.shape == (h, w) and np.isfinite(g.text).all(), what
        assert g.text.min() >= 0 and g.text.max() <= 1, what
    assert encoder.encode_pages([]) == []


def test_the_same_page_gives_the_same_features_every_time_and_in_any_batch(encoder):
    batched = encoder.encode_pages(PAGES)
    again = encoder.encode_pages(PAGES)
    for img, a, b in zip(PAGES, batched, again):
        assert np.array_equal(a.features, b.features) and np.array_equal(a.text, b.text), img.size
    for img, a in zip(PAGES, batched):
        (alone,) = encoder.encode_pages([img])
        assert _close(a.features, alone.features) and _close(a.text, alone.text), (encoder.info.name, img.size)


@pytest.mark.parametrize("query", QUERIES)
def test_queries_are_finite_unit_token_vectors(encoder, query):
    q = encoder.embed_query(query)
    assert q.text == query and len(q.tokens) >= 1
    assert q.vectors.shape == (len(q.tokens), encoder.info.dim) and q.vectors.dtype == np.float32
    _check_units(q.vectors, f"{encoder.info.name} {query!r}")
    for t in q.tokens:
        assert 0 <= t.start <= t.end <= len(query), t  # (a space piece the tokenizer adds spans nothing)
    assert np.array_equal(encoder.embed_query(query).vectors, q.vectors)  # deterministic
    ids = [t.id for t in q.tokens]
    _check_units(encoder.token_vectors(ids), f"{encoder.info.name} token_vectors")

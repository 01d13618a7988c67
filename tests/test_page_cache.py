"""Decoded pages kept for later reads (``storage.features.PageCache``): the same features as a fresh
decode, never another blob's, within the memory budget."""

import numpy as np
import pytest

import tokensearch.storage.features as features
from tokensearch.settings import Settings
from tokensearch.storage.features import FeatureStore, encode_page


def _blob(seed: int, n: int = 400, d: int = 32) -> bytes:
    rng = np.random.default_rng(seed)
    feats = rng.normal(size=(n, d)).astype(np.float32)
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    flat = rng.choice(40 * 40, size=n, replace=False)
    return encode_page(40, 40, flat // 40, flat % 40, feats)


def _write(folder, blob: bytes, referenced_end=lambda seg: 0) -> tuple[int, int, int]:
    writer = FeatureStore(folder)
    writer.begin(referenced_end)
    where = writer.append(blob)
    writer.commit()
    writer.close()
    return where


@pytest.fixture
def decodes(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = features.decode_page

    def counted(blob):
        calls.append(len(blob))
        return real(blob)

    monkeypatch.setattr(features, "decode_page", counted)
    return calls


def test_a_page_read_again_comes_from_the_cache_with_the_same_features(tmp_path, decodes):
    where = _write(tmp_path, _blob(1))
    store = FeatureStore(tmp_path, cache_bytes=1 << 20)
    first = store.read(*where)
    again = store.read(*where)
    assert len(decodes) == 1
    fresh = FeatureStore(tmp_path).read(*where)
    assert np.array_equal(again.feats, fresh.feats)
    assert np.array_equal(again.ys, fresh.ys) and np.array_equal(again.xs, fresh.xs)
    assert again is first
    with pytest.raises(ValueError):  # shared by every reader: nobody may change it
        again.rows[0, 0] = 0.0


def test_a_place_holding_another_blob_is_read_again_not_answered_from_the_cache(tmp_path, decodes):
    """A writer trims what follows the last referenced blob and appends there: the same segment, offset
    and length can hold another page later (its SQL row was removed meanwhile)."""
    seg, off, n = _write(tmp_path, _blob(1))
    store = FeatureStore(tmp_path, cache_bytes=1 << 20)
    old = store.read(seg, off, n)
    assert _write(tmp_path, _blob(2), referenced_end=lambda s: off) == (seg, off, n)
    new = store.read(seg, off, n)
    assert len(decodes) == 2
    assert np.array_equal(new.feats, FeatureStore(tmp_path).read(seg, off, n).feats)
    assert not np.array_equal(new.feats, old.feats)


def test_the_cache_keeps_the_last_pages_read_within_its_budget(tmp_path, decodes):
    places = [_write(tmp_path, _blob(0))]
    for i in range(1, 6):  # one after another in the segment
        end = places[-1][1] + places[-1][2]
        places.append(_write(tmp_path, _blob(i), referenced_end=lambda s, e=end: e))
    assert len({off for _, off, _ in places}) == 6
    one_page = FeatureStore(tmp_path).read(*places[0])
    size = sum(a.nbytes for a in (one_page.ys, one_page.xs, one_page.rows))
    store = FeatureStore(tmp_path, cache_bytes=3 * size)
    for where in places:
        store.read(*where)
    decodes.clear()
    for where in places[-3:]:  # the last three fit
        store.read(*where)
    assert decodes == []
    store.read(*places[0])  # the first was let go
    assert len(decodes) == 1
    assert store.cache is not None and store.cache._bytes <= 3 * size


def test_page_cache_size_is_a_setting_and_zero_turns_it_off(tmp_path):
    assert Settings(home=tmp_path).store_options()["page_cache_bytes"] == 256 * 2**20
    assert FeatureStore(tmp_path / "a", cache_bytes=0).cache is None
    opts = Settings(home=tmp_path, page_cache_mb=0).store_options()
    assert opts["page_cache_bytes"] == 0

import numpy as np

from tokensearch.search.localize import Frame, dense_maps, locate
from tokensearch.search.verify import cell_rows, margins, rescore

D = 6
VOCAB = np.eye(D, dtype=np.float32)  # token i's vector is e_i


def _unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


def _page():
    """One text line of 12 cells: token 1 written cleanly (cells 1-3), a cell run that looks a bit like
    token 1 but more like token 2 (cells 7-9), background elsewhere (token 0)."""
    feats = np.tile(VOCAB[0], (12, 1))
    feats[1:4] = VOCAB[1]
    feats[7:10] = _unit(0.66 * VOCAB[1] + 0.75 * VOCAB[2])
    ys, xs = np.zeros(12, np.int64), np.arange(12)
    return feats, ys, xs


def test_margin_excludes_the_query_token_itself():
    m = margins(VOCAB[[1]], VOCAB[[1]], np.asarray([1]), VOCAB)
    assert np.allclose(m, [1.0])  # nothing else is read there: the full margin, not 0 against itself


def test_margin_is_negative_where_another_token_reads_better():
    pooled = _unit(0.66 * VOCAB[1] + 0.75 * VOCAB[2])[None]
    m = margins(pooled, VOCAB[[1]], np.asarray([1]), VOCAB)
    assert m[0] < -0.05


def test_rescore_demotes_the_lookalike_and_keeps_the_true_occurrence():
    feats, ys, xs = _page()
    maps = dense_maps(Frame.whole(1, 12), ys, xs, feats @ VOCAB[[1]].T)
    occs = locate(maps, [3], threshold=0.5)
    assert len(occs) == 2 and occs[1].score > 0.6  # unverified, the lookalike is a strong hit
    rows = cell_rows(1, 12, ys, xs)
    out = rescore(occs, maps, rows, feats, VOCAB[[1]], np.asarray([1]), VOCAB, weight=1.0)
    true, lookalike = out
    assert true.score == occs[0].score  # its margin is positive, and the cap at 0 adds nothing
    assert lookalike.score < occs[1].score - 0.05
    assert true.box == occs[0].box and lookalike.box == occs[1].box


def test_rescore_with_zero_weight_changes_nothing():
    feats, ys, xs = _page()
    maps = dense_maps(Frame.whole(1, 12), ys, xs, feats @ VOCAB[[1]].T)
    occs = locate(maps, [3], threshold=0.5)
    out = rescore(occs, maps, cell_rows(1, 12, ys, xs), feats, VOCAB[[1]], np.asarray([1]), VOCAB, 0.0)
    assert [o.score for o in out] == [o.score for o in occs]

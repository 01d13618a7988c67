import numpy as np
import pytest

from tokensearch.search.localize import Frame, dense_maps, locate
from tokensearch.search.verify import TokenClasses, cell_rows, margins, rescore, rescore_all, word_continues

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


def test_rescoring_the_spellings_of_a_page_together_equals_one_by_one():
    feats, ys, xs = _page()
    rows = cell_rows(1, 12, ys, xs)
    groups = []
    for tok in ([1], [2], [1, 2], [3]):  # the last finds nothing
        maps = dense_maps(Frame.whole(1, 12), ys, xs, feats @ VOCAB[tok].T)
        groups.append((locate(maps, [3] * len(tok), threshold=0.5), maps, VOCAB[tok], np.asarray(tok)))
    assert sum(len(g[0]) for g in groups) >= 4 and not groups[-1][0]
    together = rescore_all(groups, rows, feats, VOCAB, weight=1.0)
    alone = [rescore(occs, maps, rows, feats, own, ids, VOCAB, 1.0) for occs, maps, own, ids in groups]
    assert [o.score for g in together for o in g] == pytest.approx([o.score for g in alone for o in g], abs=1e-6)
    assert [len(g) for g in together] == [len(g) for g in alone]
    assert [[o.box for o in g] for g in together] == [[o.box for o in g] for g in alone]


# word end: a vocabulary of 7 tokens, each text's vector e_i; the query word is "correct" = " cor" + "rect"
WORD_TEXTS = [" cor", "rect", "ly", " an", ",", "7", "ct"]
WORDS = np.eye(len(WORD_TEXTS), dtype=np.float32)


def _line(after: list[int | None]):
    """A line of cells: " cor" (0-1), "rect" (2-4), then one cell per entry of ``after`` (a token id, or
    None for background, which the index does not keep); the query's occurrence located on it."""
    ids = [0, 0, 1, 1, 1, *after]
    keep = [i for i, t in enumerate(ids) if t is not None]
    feats = WORDS[[ids[i] for i in keep]]
    ys, xs = np.zeros(len(keep), np.int64), np.asarray(keep)
    maps = dense_maps(Frame.whole(1, len(ids)), ys, xs, feats @ WORDS[[0, 1]].T)
    occs = locate(maps, [3, 4], threshold=0.9)
    assert len(occs) == 1 and occs[0].token_boxes[-1][2] == 4
    return occs, cell_rows(1, len(ids), ys, xs), feats


def _continues(after: list[int | None], word: str = "correct") -> bool:
    occs, rows, feats = _line(after)
    return bool(word_continues(occs, rows, feats, WORDS, TokenClasses.of(WORD_TEXTS), word)[0])


def test_word_end_sees_a_longer_word_going_on():
    assert _continues([2, 2])  # "correct|ly"


def test_word_end_accepts_a_space_punctuation_or_background_after_the_word():
    assert not _continues([3, 3])  # "correct an"
    assert not _continues([4, 3])  # "correct, an"
    assert not _continues([None, 2])  # background first: what follows is another word
    assert not _continues([])  # the line ends


def test_word_end_skips_the_query_words_own_last_letters():
    assert not _continues([6, 3])  # the box stopped short of "ct": still "correct", then a new word
    assert _continues([6, 2])  # ... then "ly": "correctly"


def test_word_end_takes_a_switch_between_letters_and_digits_as_a_boundary():
    assert not _continues([5, 5])  # "correct7" reads as the word and a number set too close


def test_word_end_classes_come_from_the_token_texts():
    c = TokenClasses.of([" The", "ly", ",", "", "7"])
    assert c.starts_word.tolist() == [True, False, False, False, False]
    assert c.alnum.tolist() == [True, True, False, False, True]
    assert c.bodies == ("the", "ly", ",", "", "7")


def test_word_end_reads_best_first_and_stops_at_the_first_whole_word():
    """Two equal matches: "correct|ly" on line 0, "correct an" on line 2. The first read goes on and loses
    the penalty; the second does not, so reading stops there and it is the unit's best."""
    from tokensearch.search.searcher import Searcher, SearchOptions

    ids = {0: [0, 0, 1, 1, 1, 2, 2], 2: [0, 0, 1, 1, 1, 3, 3]}  # line 1 is background (no cells kept)
    ys, xs = np.repeat([0, 2], 7), np.tile(np.arange(7), 2)
    feats = WORDS[[ids[y][x] for y, x in zip(ys, xs)]]
    maps = dense_maps(Frame.whole(3, 7), ys, xs, feats @ WORDS[[0, 1]].T)
    occs = locate(maps, [3, 4], threshold=0.9)
    assert sorted(o.cells[-1][0] for o in occs) == [0, 2]
    opt = SearchOptions(threshold=0.5, competitors=WORDS, token_classes=TokenClasses.of(WORD_TEXTS))
    out = Searcher(None, None, opt)._word_end(occs, cell_rows(3, 7, ys, xs), feats, "correct")
    by_line = {o.cells[-1][0]: o.score for o in out}
    assert by_line[0] == pytest.approx(1.0 - opt.word_end_penalty) and by_line[2] == pytest.approx(1.0)

from dataclasses import replace

import numpy as np
import pytest

from tokensearch.search.localize import GROW_RATIO, Frame, dense_maps, locate
from tokensearch.search.verify import (
    TokenClasses,
    cell_rows,
    margins,
    pooled_all,
    rescore,
    rescore_all,
    word_breaks,
    word_continues,
)

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


def _noisy_word():
    """Token 1 written over cells 1-4, each cell reading it at cosine 0.70 with noise of its own that
    pooling averages away (a long token: no single cell shows all of it)."""
    feats = np.tile(VOCAB[0], (8, 1))
    for i, extra in zip(range(1, 5), (2, 3, 4, 5)):
        feats[i] = _unit(0.70 * VOCAB[1] + 0.714 * VOCAB[extra])
    return feats, np.zeros(8, np.int64), np.arange(8)


def test_pooled_share_scores_a_token_by_its_pooled_cells_as_well_as_its_chain_cell():
    feats, ys, xs = _noisy_word()
    maps = dense_maps(Frame.whole(1, 8), ys, xs, feats @ VOCAB[[1]].T)
    occs = locate(maps, [4], threshold=0.5)
    assert occs and occs[0].score == pytest.approx(0.70, abs=0.01)
    rows = cell_rows(1, 8, ys, xs)
    pooled = pooled_all([(occs[:1], maps)], rows, feats) @ VOCAB[1]
    assert pooled[0] > 0.85  # the four cells' noise partly cancels out (0.89)
    alone = rescore(occs, maps, rows, feats, VOCAB[[1]], np.asarray([1]), VOCAB, 1.0)
    half = rescore(occs, maps, rows, feats, VOCAB[[1]], np.asarray([1]), VOCAB, 1.0, pooled_share=0.5)
    assert alone[0].score == pytest.approx(occs[0].score)  # read as itself: no margin to pay
    assert half[0].score == pytest.approx(0.5 * occs[0].score + 0.5 * pooled[0], abs=1e-5)


def test_pooled_share_does_not_lift_a_lookalike_over_its_margin():
    feats, ys, xs = _page()
    maps = dense_maps(Frame.whole(1, 12), ys, xs, feats @ VOCAB[[1]].T)
    occs = locate(maps, [3], threshold=0.5)
    rows = cell_rows(1, 12, ys, xs)
    out = rescore(occs, maps, rows, feats, VOCAB[[1]], np.asarray([1]), VOCAB, 4.0, pooled_share=0.5)
    assert out[0].score == pytest.approx(1.0)
    assert out[1].score < 0.5  # pooled, it still reads as token 2 better than as token 1


def test_rescoring_the_spellings_of_a_page_together_equals_one_by_one():
    feats, ys, xs = _page()
    rows = cell_rows(1, 12, ys, xs)
    groups = []
    for tok in ([1], [2], [1, 2], [3]):  # the last finds nothing
        maps = dense_maps(Frame.whole(1, 12), ys, xs, feats @ VOCAB[tok].T)
        groups.append((locate(maps, [3] * len(tok), threshold=0.5), maps, VOCAB[tok], np.asarray(tok)))
    assert sum(len(g[0]) for g in groups) >= 4 and not groups[-1][0]
    together = rescore_all(groups, rows, feats, VOCAB, weight=1.0, pooled_share=0.3)
    alone = [rescore(occs, maps, rows, feats, own, ids, VOCAB, 1.0, 0.3) for occs, maps, own, ids in groups]
    assert [o.score for g in together for o in g] == pytest.approx([o.score for g in alone for o in g], abs=1e-6)
    assert [len(g) for g in together] == [len(g) for g in alone]
    assert [[o.box for o in g] for g in together] == [[o.box for o in g] for g in alone]


def test_floors_drop_only_occurrences_that_cannot_reach_them_and_keep_the_others_scores():
    feats, ys, xs = _page()
    rows = cell_rows(1, 12, ys, xs)
    groups = []
    for tok in ([1], [2], [1, 2]):
        maps = dense_maps(Frame.whole(1, 12), ys, xs, feats @ VOCAB[tok].T)
        groups.append((locate(maps, [3] * len(tok), threshold=0.3), maps, VOCAB[tok], np.asarray(tok)))
    full = rescore_all(groups, rows, feats, VOCAB, weight=4.0, pooled_share=0.5)
    floors = [0.9, 0.5, 0.6]
    pruned = rescore_all(groups, rows, feats, VOCAB, 4.0, 0.5, floors)
    for (occs, maps, own, _), f, every, kept in zip(groups, floors, full, pruned):
        # the margins only lower a score: what reaches the floor is kept, with the same score
        assert [o.score for o in every if o.score >= f] == [o.score for o in kept if o.score >= f]
        # and what is dropped could not reach it even without them
        read = [float(np.einsum("td,td->t", pooled_all([([o], maps)], rows, feats), own).mean()) for o in occs]
        assert len(kept) == sum(0.5 * o.score + 0.5 * r >= f for o, r in zip(occs, read))
    assert sum(map(len, pruned)) < sum(map(len, full))  # something was dropped


def _pooled_one_token_at_a_time(occ, maps, rows, feats):
    """The definition, read literally: each token's box, its cells at GROW_RATIO of the chain cell."""
    out = np.zeros((len(occ.cells), feats.shape[1]), dtype=np.float32)
    for j, ((cy, cx), (x0, y0, x1, y1)) in enumerate(zip(occ.cells, occ.token_boxes)):
        m, r = maps[j, y0 : y1 + 1, x0 : x1 + 1], rows[y0 : y1 + 1, x0 : x1 + 1]
        sel = r[(m >= GROW_RATIO * maps[j, cy, cx]) & (r >= 0)]
        if len(sel) == 0 and rows[cy, cx] >= 0:
            sel = np.asarray([rows[cy, cx]])
        if len(sel):
            v = feats[sel].mean(axis=0)
            out[j] = v / np.linalg.norm(v)
    return out


def test_pooling_every_occurrence_at_once_equals_each_token_alone():
    """Lines of runs of 1-4 cells, each leaning to one of 3 tokens by a random amount: boxes of several
    cells with neighbours either side of GROW_RATIO, gaps (cells not kept), and chain cells scoring below
    0 (no cell of their box is kept: the chain cell alone)."""
    rng = np.random.default_rng(3)
    H, W, d = 24, 64, 8
    vecs = np.linalg.qr(rng.standard_normal((d, d)))[0][:3].astype(np.float32)  # 3 orthonormal tokens
    ys, xs, feats = [], [], []
    for y in range(H):
        x = 0
        while x < W:
            run, tok = int(rng.integers(1, 5)), int(rng.integers(0, 3))
            for xx in range(x, min(W, x + run)):
                if rng.random() < 0.9:
                    v = rng.uniform(-0.3, 1.5) * vecs[tok] + 0.4 * rng.standard_normal(d).astype(np.float32)
                    ys.append(y), xs.append(xx), feats.append(v / np.linalg.norm(v))
            x += run
    ys_a, xs_a, f = np.asarray(ys), np.asarray(xs), np.asarray(feats, dtype=np.float32)
    rows = cell_rows(H, W, ys_a, xs_a)
    maps = dense_maps(Frame.whole(H, W), ys_a, xs_a, f @ vecs.T)
    occs = locate(maps, [2, 1, 3], threshold=-0.5, max_occurrences=200)
    widths = [b[2] - b[0] for o in occs for b in o.token_boxes]
    assert len(occs) >= 30 and max(widths) >= 3
    assert any(maps[j, cy, cx] < 0 for o in occs for j, (cy, cx) in enumerate(o.cells))
    # and a token box of one cell reading below 0: the chain cell alone
    y, x = int(ys_a[0]), int(xs_a[0])
    occs.append(replace(occs[0], cells=[(y, x)], token_boxes=[(x, y, x, y)]))
    single = maps[:1].copy()
    single[0, y, x] = -0.2
    got = pooled_all([(occs[:-1], maps), (occs[-1:], single)], rows, f)
    want = np.concatenate(
        [_pooled_one_token_at_a_time(o, maps, rows, f) for o in occs[:-1]]
        + [_pooled_one_token_at_a_time(occs[-1], single, rows, f)]
    )
    assert got.shape == want.shape and np.abs(want[-1]).max() > 0
    assert np.allclose(got, want, atol=1e-6)


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


def _left(before: list[int | None], letters: bool) -> bool:
    """A line of cells: one per entry of ``before`` (a token id, None for background), then "rect" (3 cells),
    the unspaced query word "rect" located on it; does the word go on left of it?"""
    ids = [*before, 1, 1, 1]
    keep = [i for i, t in enumerate(ids) if t is not None]
    feats = WORDS[[ids[i] for i in keep]]
    ys, xs = np.zeros(len(keep), np.int64), np.asarray(keep)
    maps = dense_maps(Frame.whole(1, len(ids)), ys, xs, feats @ WORDS[[1]].T)
    occs = locate(maps, [4], threshold=0.9)
    assert len(occs) == 1 and occs[0].token_boxes[0][0] == len(before)
    rows = cell_rows(1, len(ids), ys, xs)
    return bool(word_continues(occs, rows, feats, WORDS, TokenClasses.of(WORD_TEXTS), "rect", "start", letters)[0])


def test_word_start_of_a_glued_spelling_reads_letters_left_of_it():
    """A spelling cut as printed after punctuation ("(rect") is bounded by punctuation or background on its
    left and goes on past letters ("cor|rect"); a spaced word's left is never read."""
    assert _left([0, 0], letters=True)  # " cor" left: "correct", the word began earlier
    assert _left([2], letters=True)
    assert not _left([4], letters=True)  # "," then the word
    assert not _left([0, None], letters=True)  # background right before it: another word ends there
    assert not _left([], letters=True)  # the line starts with it
    assert not _left([0, 0], letters=False)


def _breaks(between: list[int | None]) -> bool:
    """A line of cells: " cor" (0-1), one cell per entry of ``between`` (a token id, None for background),
    then "rect" (3 cells); the query word "correct" located across them: does another word start inside it?"""
    ids = [0, 0, *between, 1, 1, 1]
    keep = [i for i, t in enumerate(ids) if t is not None]
    feats = WORDS[[ids[i] for i in keep]]
    ys, xs = np.zeros(len(keep), np.int64), np.asarray(keep)
    maps = dense_maps(Frame.whole(1, len(ids)), ys, xs, feats @ WORDS[[0, 1]].T)
    occs = locate(maps, [3, 4], threshold=0.9)
    assert len(occs) == 1
    rows = cell_rows(1, len(ids), ys, xs)
    classes = TokenClasses.of(WORD_TEXTS)
    return bool(word_breaks(occs, rows, feats, WORDS, classes, "correct", [False, True])[0])


def test_a_word_chained_over_another_word_breaks_and_a_word_read_whole_does_not():
    assert _breaks([3, 3])  # " cor an rect": " an" starts a word between the pieces of "correct"
    assert not _breaks([])  # "correct" printed whole
    assert not _breaks([2, 2])  # letter pieces between them: a misreading inside the word, not a new word
    assert not _breaks([3])  # one cell reading a word start: a stray reading, no word
    assert not _breaks([3, None, 3])  # background (not kept) is not read


def test_word_end_classes_come_from_the_token_texts():
    c = TokenClasses.of([" The", "ly", ",", "", "7"])
    assert c.starts_word.tolist() == [True, False, False, False, False]
    assert c.alnum.tolist() == [True, True, False, False, True]
    assert c.bodies == ("the", "ly", ",", "", "7")


CUT_TEXTS = [" to", "wards", " tow", "ards", "ward", "ords", " wards", "o", " To"]


def test_alike_tokens_are_longer_cuts_of_the_query_text_at_the_token():
    c = TokenClasses.of(CUT_TEXTS)
    to = [CUT_TEXTS[i] for i in c.alike("towards", 0, 2, own=0)]  # " to" of " to" + "wards"
    assert to[0] == " to" and set(to) == {" to", " tow"}  # "o" leaves the "t" out, " To" is another case
    # "ards", "ward": a letter of "wards" left out; "ords": other text; " wards": no word starts there
    assert [CUT_TEXTS[i] for i in c.alike("towards", 2, 7, own=1)] == ["wards"]
    assert {CUT_TEXTS[i] for i in c.alike("go wards", 3, 8, own=1)} == {"wards", " wards"}  # a word starts there


def test_a_longer_cut_of_the_same_letters_does_not_demote_a_match():
    """The cells of " to" read a bit more like " tow" (the query's letters cut one later): no margin is lost
    against it, while a read as "o" (a piece leaving the "t" out) or " To" (another case) still costs."""
    vocab = np.eye(len(CUT_TEXTS), dtype=np.float32)
    alike = [TokenClasses.of(CUT_TEXTS).alike("towards", 0, 2, own=0)]
    for other, demoted in ((2, False), (7, True), (8, True)):
        pooled = _unit(0.7 * vocab[0] + 0.72 * vocab[other])[None]
        assert (margins(pooled, vocab[[0]], alike, vocab)[0] < 0) == demoted, CUT_TEXTS[other]
        assert margins(pooled, vocab[[0]], np.asarray([0]), vocab)[0] < 0  # each counts with the own id alone


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
    out = Searcher(None, None, opt)._word_bounds(occs, cell_rows(3, 7, ys, xs), feats, "correct", "correct")
    by_line = {o.cells[-1][0]: o.score for o in out}
    assert by_line[0] == pytest.approx(1.0 - opt.word_end_penalty) and by_line[2] == pytest.approx(1.0)


def test_word_bounds_drop_a_word_read_over_another_word():
    """ " cor an rect" on line 0, "correct" printed whole on line 2: the chain over " an" loses the word-break
    penalty, enough to fall under any threshold; the whole word keeps its score."""
    from tokensearch.search.searcher import Searcher, SearchOptions

    ids = {0: [0, 0, 3, 3, 1, 1, 1], 2: [0, 0, 1, 1, 1, 4, 4]}
    ys, xs = np.repeat([0, 2], 7), np.tile(np.arange(7), 2)
    feats = WORDS[[ids[y][x] for y, x in zip(ys, xs)]]
    maps = dense_maps(Frame.whole(3, 7), ys, xs, feats @ WORDS[[0, 1]].T)
    occs = locate(maps, [3, 4], threshold=0.9)
    opt = SearchOptions(threshold=0.5, competitors=WORDS, token_classes=TokenClasses.of(WORD_TEXTS))
    rows = cell_rows(3, 7, ys, xs)
    out = Searcher(None, None, opt)._word_bounds(occs, rows, feats, "correct", "correct", ids=[0, 1], text="correct")
    by_line = {o.cells[-1][0]: o.score for o in out}
    assert by_line[2] == pytest.approx(1.0) and by_line[0] == pytest.approx(1.0 - opt.word_break_penalty)
    off = replace(opt, word_break_penalty=0.0)
    kept = Searcher(None, None, off)._word_bounds(occs, rows, feats, "correct", "correct", ids=[0, 1], text="correct")
    assert {o.cells[-1][0]: o.score for o in kept}[0] == pytest.approx(1.0)


# word start: the same reading left of the match. A vocabulary of 8 tokens, each text's vector e_i; the query
# is the amount "27.10" = "27" + "." + "10" (no leading space: nothing in its tokens says a number starts)
NUM_TEXTS = ["27", ".", "10", "1", ":", "RM", "/", "2"]
NUMS = np.eye(len(NUM_TEXTS), dtype=np.float32)


def _number_line(before: list[int | None]):
    """A line of cells: one per entry of ``before`` (a token id, or None for background), then "27" (2
    cells), "." (1), "10" (2); the query's occurrence located on it, its first token's box on "27"."""
    ids = [*before, 0, 0, 1, 2, 2]
    keep = [i for i, t in enumerate(ids) if t is not None]
    feats = NUMS[[ids[i] for i in keep]]
    ys, xs = np.zeros(len(keep), np.int64), np.asarray(keep)
    maps = dense_maps(Frame.whole(1, len(ids)), ys, xs, feats @ NUMS[[0, 1, 2]].T)
    occs = locate(maps, [2, 1, 2], threshold=0.9)
    assert len(occs) == 1 and occs[0].token_boxes[0][0] == len(before)
    return occs, cell_rows(1, len(ids), ys, xs), feats


def _starts_earlier(before: list[int | None], word: str = "27.10") -> bool:
    occs, rows, feats = _number_line(before)
    return bool(word_continues(occs, rows, feats, NUMS, TokenClasses.of(NUM_TEXTS), word, side="start")[0])


def test_word_start_sees_a_longer_number_going_on():
    assert _starts_earlier([3])  # "1|27.10": the amount 127.10
    assert _starts_earlier([None, 3, 3])


def test_word_start_reads_a_point_comma_or_colon_between_digits_as_one_number():
    assert _starts_earlier([3, 4])  # "1:27.10" (a time "15:53:00" for "53.00")
    assert _starts_earlier([3, 1])  # "1.27.10"
    assert not _starts_earlier([5, 4])  # "RM:27.10": the colon ends a label, not a number
    assert not _starts_earlier([None, 4])  # ": 27.10"


def test_word_start_accepts_background_a_separator_or_a_currency_before_the_number():
    assert not _starts_earlier([])  # the line starts with it
    assert not _starts_earlier([3, None])  # "1 27.10": another number, set apart
    assert not _starts_earlier([5, 5])  # "RM27.10": letters before digits, as the word end takes them
    assert not _starts_earlier([3, 6])  # "1/27.10": "/" and "-" separate the parts of dates and codes


def test_word_start_skips_the_numbers_own_first_digits():
    assert not _starts_earlier([None, 7])  # the box stopped short of its own "2": still "27.10"
    assert _starts_earlier([3, 7])  # ... then "1": "127.10"


def test_word_start_is_not_read_left_of_a_word_starting_with_a_letter():
    """A one-cell space between words reads as the previous word's last letters, so a glued prefix and a
    tight space look alike left of a letter: only numbers are read (the vocabulary check sees a letter
    word's missing leading space)."""
    ids = [2, 2, 0, 0, 1, 1, 1]  # "ly" glued before " cor"+"rect"
    feats = WORDS[ids]
    ys, xs = np.zeros(len(ids), np.int64), np.arange(len(ids))
    occs = locate(dense_maps(Frame.whole(1, len(ids)), ys, xs, feats @ WORDS[[0, 1]].T), [3, 4], threshold=0.9)
    assert len(occs) == 1 and occs[0].token_boxes[0][0] == 2
    rows, classes = cell_rows(1, len(ids), ys, xs), TokenClasses.of(WORD_TEXTS)
    assert not word_continues(occs, rows, feats, WORDS, classes, "correct", side="start")[0]


def test_word_bounds_take_the_start_penalty_where_a_number_goes_on_to_the_left():
    """Two equal matches of "27.10": "127.10" on line 0, "27.10" alone on line 2. The first loses the
    word-start penalty, the second keeps its score; with the penalty 0 nothing changes."""
    from tokensearch.search.searcher import Searcher, SearchOptions

    ids = {0: [3, 0, 0, 1, 2, 2], 2: [None, 0, 0, 1, 2, 2]}  # line 1 is background (no cells kept)
    cells = [(y, x) for y in (0, 2) for x, t in enumerate(ids[y]) if t is not None]
    ys, xs = np.asarray([c[0] for c in cells]), np.asarray([c[1] for c in cells])
    feats = NUMS[[ids[y][x] for y, x in cells]]
    maps = dense_maps(Frame.whole(3, 6), ys, xs, feats @ NUMS[[0, 1, 2]].T)
    occs = locate(maps, [2, 1, 2], threshold=0.9)
    assert sorted(o.cells[0][0] for o in occs) == [0, 2]
    rows = cell_rows(3, 6, ys, xs)
    opt = SearchOptions(threshold=0.5, competitors=NUMS, token_classes=TokenClasses.of(NUM_TEXTS))
    out = Searcher(None, None, opt)._word_bounds(occs, rows, feats, "27.10", "27.10")
    by_line = {o.cells[0][0]: o.score for o in out}
    assert by_line[0] == pytest.approx(1.0 - opt.word_start_penalty) and by_line[2] == pytest.approx(1.0)
    off = replace(opt, word_start_penalty=0.0)
    assert all(
        o.score == pytest.approx(1.0)
        for o in Searcher(None, None, off)._word_bounds(occs, rows, feats, "27.10", "27.10")
    )

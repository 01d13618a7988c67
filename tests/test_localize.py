import numpy as np
import pytest

from tokensearch.search.localize import Frame, chain_scores, dense_maps, locate


def _maps(T, H=10, W=40):
    return np.zeros((T, H, W), dtype=np.float32)


def test_single_token_gives_one_box_per_occurrence():
    m = _maps(1)
    m[0, 2, 5:9] = 1.0  # a word 4 cells wide on row 2
    m[0, 7, 20:23] = 0.9  # another occurrence
    occ = locate(m, [4], threshold=0.5)
    assert len(occ) == 2
    assert occ[0].score == 1.0
    x0, y0, x1, y1 = occ[0].box
    assert (x0, x1) == (5 / 40, 9 / 40) and (y0, y1) == (2 / 10, 3 / 10)


def test_phrase_tokens_must_be_in_reading_order():
    m = _maps(2)
    m[0, 3, 10:13] = 1.0
    m[1, 3, 13:16] = 1.0  # right after token 0: a match
    assert locate(m, [3, 3], threshold=0.8)
    swapped = _maps(2)
    swapped[1, 3, 10:13] = 1.0
    swapped[0, 3, 13:16] = 1.0  # token 1 before token 0: no match
    assert not locate(swapped, [3, 3], threshold=0.8)


def test_phrase_tokens_far_apart_do_not_match():
    m = _maps(2)
    m[0, 3, 0:2] = 1.0
    m[1, 3, 35:37] = 1.0
    assert not locate(m, [2, 2], threshold=0.8)
    m2 = _maps(2)
    m2[0, 1, 10:12] = 1.0
    m2[1, 6, 12:14] = 1.0  # next token five rows below: another line
    assert not locate(m2, [2, 2], threshold=0.8)


def test_phrase_box_covers_all_tokens():
    m = _maps(3)
    m[0, 4, 2:5] = 1.0
    m[1, 4, 5:7] = 1.0
    m[2, 4, 8:12] = 1.0
    occ = locate(m, [3, 2, 4], threshold=0.9)
    assert len(occ) == 1
    assert occ[0].box == (2 / 40, 4 / 10, 12 / 40, 5 / 10)


def test_nothing_above_threshold_gives_no_occurrence():
    m = _maps(1)
    m[0] = 0.3
    assert locate(m, [3], threshold=0.5) == []


def test_chain_score_is_sum_of_best_predecessor():
    m = _maps(2, H=3, W=8)
    m[0, 1, 1] = 0.5
    m[0, 1, 2] = 0.9
    m[1, 1, 4] = 0.8
    c = chain_scores(m, [3])[-1]
    assert abs(c[1, 4] - 1.7) < 1e-6


def test_locating_on_the_text_frame_gives_the_same_occurrences_as_on_the_whole_page():
    rng = np.random.default_rng(0)
    H, W = 30, 50
    ys, xs = np.nonzero(rng.random((H, W)) < 0.05)
    keep = (ys >= 6) & (ys < 24) & (xs >= 9) & (xs < 41)  # text only inside the margins
    ys, xs = ys[keep], xs[keep]
    sims = rng.random((len(ys), 2)).astype(np.float32)
    sims[ys == 12, 0], sims[ys == 12, 1] = 0.95, 0.9  # strong tokens on one line
    frame = Frame.of_text(H, W, ys, xs)
    assert (frame.h, frame.w) < (H, W) and frame.y0 >= 6 and frame.x0 >= 9
    whole = locate(dense_maps(Frame.whole(H, W), ys, xs, sims), [2, 2], threshold=0.5)
    cropped = locate(dense_maps(frame, ys, xs, sims), [2, 2], threshold=0.5, frame=frame)
    assert whole and [(o.score, o.box) for o in whole] == [(o.score, o.box) for o in cropped]


def test_chain_estimate_prefers_tokens_side_by_side_to_the_same_tokens_apart():
    """Stage 1's page estimate: the same best cell per token, but only one page has them in reading order."""
    from tokensearch.search.localize import chain_estimate

    pages = np.array([1, 2])
    token0 = (np.array([1, 2, 2]), np.array([0.8, 0.8, 0.3], np.float32), np.array([[5, 10], [5, 10], [30, 3]]))
    token1 = (np.array([1, 2, 1]), np.array([0.8, 0.8, 0.3], np.float32), np.array([[5, 12], [40, 80], [9, 9]]))
    est = chain_estimate([token0, token1], [3, 3], pages)
    assert est[0] == pytest.approx(0.8)  # page 1: token 1 two cells right of token 0
    assert est[1] == pytest.approx((0.8 + 0.3) / 2)  # page 2: token 1 is elsewhere, counted at the fill
    # a page without any cell of the first token still gets an estimate (the fill, then its own cell)
    est = chain_estimate(
        [token0, (np.array([3]), np.array([0.9], np.float32), np.array([[1, 1]]))], [3, 3], np.array([1, 2, 3])
    )
    assert est[2] == pytest.approx((0.3 + 0.9) / 2)


def _chain_estimate_by_hand(rows, lens, pages):
    """chain_estimate's rule, cell by cell: chain ends (page, y, x, value), a page's best end carried on at
    the fill of a token it lacks there."""
    from tokensearch.search.localize import CELLS_PER_CHAR

    ends = {}  # (page, y, x) -> best value of a chain ending there
    ids, scores, cells = rows[0]
    fill = float(scores.min()) if len(scores) else 0.0
    for p, v, (y, x) in zip(ids.tolist(), scores.tolist(), cells.tolist()):
        ends[(p, y, x)] = max(ends.get((p, y, x), -np.inf), v)
    for p in pages.tolist():
        ends[(p, -99, -99)] = max(ends.get((p, -99, -99), -np.inf), fill)
    for j in range(1, len(rows)):
        gap = max(2, int(np.ceil(CELLS_PER_CHAR * (lens[j - 1] + lens[j] + 1))))
        best = {}  # page -> (value, y, x) of its best chain so far (first in key order among equals)
        for (p, y, x), v in sorted(ends.items()):
            if p not in best or v > best[p][0]:
                best[p] = (v, y, x)
        ids, scores, cells = rows[j]
        fill = float(scores.min()) if len(scores) else 0.0
        new = {}
        for p, v, (y, x) in zip(ids.tolist(), scores.tolist(), cells.tolist()):
            pred = max(
                (ends.get((p, y + dy, x - dx), -np.inf) for dy in (-1, 0, 1) for dx in range(1, gap + 1)),
                default=-np.inf,
            )
            new[(p, y, x)] = max(new.get((p, y, x), -np.inf), v + pred, best[p][0] + fill)
        for p, (v, y, x) in best.items():
            new[(p, y, x)] = max(new.get((p, y, x), -np.inf), v + fill)
        ends = new
    est = np.full(len(pages), -np.inf)
    for (p, _, _), v in ends.items():
        i = int(np.searchsorted(pages, p))
        est[i] = max(est[i], v)
    return est / len(rows)


def test_chain_estimate_is_the_best_chain_of_retrieved_cells_on_random_pages():
    from tokensearch.search.localize import chain_estimate

    rng = np.random.default_rng(3)
    for _ in range(60):
        pages = np.sort(rng.choice(50, int(rng.integers(1, 6)), replace=False))
        lens = [int(rng.integers(1, 7)) for _ in range(int(rng.integers(1, 5)))]
        rows = []
        for _ in lens:
            n = int(rng.integers(0, 60))
            ids, cells = rng.choice(pages, n), rng.integers(0, [6, 25], size=(n, 2))
            _, first = np.unique(ids * 1000 + cells[:, 0] * 100 + cells[:, 1], return_index=True)
            # scores on a 1/64 grid: sums are exact in float32, so both sides agree to the bit
            rows.append((ids[first], (rng.integers(0, 64, len(first)) / 64).astype(np.float32), cells[first]))
        got = chain_estimate(rows, lens, pages)
        assert got.tolist() == pytest.approx(_chain_estimate_by_hand(rows, lens, pages).tolist(), abs=1e-6)


def _one_chain_at_a_time(maps: np.ndarray, piece_lens: list[int], threshold: float, limit: int) -> list[tuple]:
    """The occurrences as the definition reads, with none of ``locate``'s shortcuts (no shared predecessors or
    boxes, a box's rows read whole): chain ends best first, each backtracked through the best cell of
    its step window and its tokens' boxes grown one cell at a time; an end inside a taken occurrence is skipped.
    (score, cells, token boxes) each."""
    from tokensearch.search.localize import BOX_CELLS_PER_CHAR, CELLS_PER_CHAR, GROW_RATIO

    T, H, W = maps.shape
    gaps = [max(2, int(np.ceil(CELLS_PER_CHAR * (piece_lens[j] + piece_lens[j + 1] + 1)))) for j in range(T - 1)]
    partial = chain_scores(maps, gaps)
    score = partial[-1] / T

    def grow(m, y, x, max_w):
        thr = GROW_RATIO * float(m[y, x])
        x0 = x
        while x0 - 1 >= 0 and x - (x0 - 1) < max_w and m[y, x0 - 1] >= thr:
            x0 -= 1
        x1 = x
        while x1 + 1 < W and (x1 + 1) - x < max_w and m[y, x1 + 1] >= thr:
            x1 += 1
        y0 = y
        while y0 - 1 >= 0 and y - (y0 - 1) <= 3 and m[y0 - 1, x0 : x1 + 1].max() >= thr:
            y0 -= 1
        y1 = y
        while y1 + 1 < H and (y1 + 1) - y <= 3 and m[y1 + 1, x0 : x1 + 1].max() >= thr:
            y1 += 1
        return x0, y0, x1, y1

    cand = np.argwhere(score >= threshold)
    order = np.argsort(-score[cand[:, 0], cand[:, 1]], kind="stable")
    taken = np.zeros((H, W), dtype=bool)
    out = []
    for y, x in cand[order].tolist():
        if taken[y, x]:
            continue
        cells = [(y, x)]
        for j in range(T - 1, 0, -1):
            cy, cx = cells[0]
            g = gaps[j - 1]
            r0, c0 = max(0, cy - 1), max(0, cx - g)
            if cx > c0:
                win = partial[j - 1][r0 : min(H, cy + 2), c0:cx]
                dy, dx = np.unravel_index(int(np.argmax(win)), win.shape)
                cells.insert(0, (r0 + int(dy), c0 + int(dx)))
            else:
                cells.insert(0, (cy, cx))
        boxes = [grow(maps[j], cy, cx, int(BOX_CELLS_PER_CHAR * piece_lens[j]) + 2) for j, (cy, cx) in enumerate(cells)]
        bx0, by0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
        bx1, by1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
        if any(taken[cy, cx] for cy, cx in cells):
            taken[by0 : by1 + 1, bx0 : bx1 + 1] = True
            continue
        taken[max(0, by0 - 1) : by1 + 2, bx0 : bx1 + 1] = True
        out.append((float(score[y, x]), cells, boxes))
        if len(out) >= limit:
            break
    return out


def test_occurrences_are_those_of_the_definition_on_random_maps():
    rng = np.random.default_rng(11)
    for trial in range(40):
        T = int(rng.integers(1, 5))
        H, W = int(rng.integers(3, 30)), int(rng.integers(3, 60))
        # blotches of high cosine on a low background, some of them side by side in reading order
        maps = (0.3 * rng.random((T, H, W))).astype(np.float32)
        for _ in range(int(rng.integers(1, 12))):
            y, x = int(rng.integers(0, H)), int(rng.integers(0, W))
            for j in range(T):
                xj = min(W - 1, x + 2 * j)
                maps[j, max(0, y - 1) : y + 2, max(0, xj - 1) : xj + 2] += rng.uniform(0.4, 0.7)
        lens = [int(n) for n in rng.integers(1, 5, T)]
        threshold, limit = float(rng.uniform(0.3, 0.7)), int(rng.integers(1, 25))
        want = _one_chain_at_a_time(maps, lens, threshold, limit)
        got = locate(maps, lens, threshold, limit)
        assert [(o.score, o.cells, o.token_boxes) for o in got] == want, trial


def _retrieved_cells(rng: np.random.Generator):
    """A block of a few pages with each token's retrieved cells drawn at random (scores in 1/64 steps: ties),
    as stage 1 hands them to ``chain_estimate``: pages, token lengths, rows, each row's fill, and each token's
    best term on each page ((T, pages): its best cell or the fill)."""
    pages = np.sort(rng.choice(50, int(rng.integers(2, 8)), replace=False))
    lens = [int(rng.integers(1, 7)) for _ in range(int(rng.integers(1, 5)))]
    rows = []
    for _ in lens:
        n = int(rng.integers(1, 60))
        ids, cells = rng.choice(pages, n), rng.integers(0, [6, 25], size=(n, 2))
        rows.append((ids, (rng.integers(0, 64, n) / 64).astype(np.float32), cells))
    fills = [float(sc.min()) for _, sc, _ in rows]
    best = np.array(
        [[max([fill, *sc[ids == p].tolist()]) for p in pages] for (ids, sc, _), fill in zip(rows, fills)], np.float32
    )
    return pages, lens, rows, fills, best


def test_a_chain_estimate_is_at_most_its_tokens_best_cells_and_is_the_same_from_its_pages_cells_alone():
    """Stage 1 chains pages in the order of this bound and stops where it cannot reach the candidates; a block of
    pages is chained from its own cells with the whole rows' fills."""
    from tokensearch.search.localize import chain_estimate

    rng = np.random.default_rng(11)
    for _ in range(60):
        pages, lens, rows, fills, best = _retrieved_cells(rng)
        whole = chain_estimate(rows, lens, pages)
        assert (whole <= best.mean(axis=0) + 1e-6).all()
        some = np.sort(rng.choice(pages, int(rng.integers(1, len(pages))), replace=False))
        alone = [(ids[np.isin(ids, some)], sc[np.isin(ids, some)], ce[np.isin(ids, some)]) for ids, sc, ce in rows]
        assert chain_estimate(alone, lens, some, fills).tolist() == whole[np.searchsorted(pages, some)].tolist()


def test_cells_left_out_of_a_block_keep_every_chain_estimate_that_reaches_its_page_s_target():
    """Stage 1 leaves out of a block the cells that cannot lift their page to the last candidate so far: a page
    whose estimate reaches its target keeps it exactly, and one under it stays under it."""
    from tokensearch.search.localize import chain_estimate
    from tokensearch.search.searcher import _cells_that_count

    rng = np.random.default_rng(13)
    dropped = 0
    for trial in range(80):
        pages, lens, rows, fills, best = _retrieved_cells(rng)
        whole = chain_estimate(rows, lens, pages, fills)
        # targets about the pages' estimates, some exactly at them
        target = (whole + rng.choice([-0.1, -0.02, 0.0, 0.02, 0.1], len(pages))).astype(np.float32)
        places = [np.searchsorted(pages, ids) for ids, _, _ in rows]
        kept = _cells_that_count(rows, places, best, fills, target)
        dropped += sum(len(a[0]) - len(b[0]) for a, b in zip(rows, kept))
        got = chain_estimate(kept, lens, pages, fills)
        reach = whole >= target
        assert got[reach].tolist() == whole[reach].tolist(), trial
        assert (got[~reach] <= whole[~reach] + 1e-6).all(), trial
    assert dropped > 0


def test_the_score_a_unit_needs_is_the_least_with_which_its_page_ranks_with_the_last_candidate():
    """Pages rank by the units present (at least the floor), then by their total; each other unit is taken at
    its bound."""
    from tokensearch.search.searcher import _scores_needed

    rng = np.random.default_rng(14)

    def ranks(scores: np.ndarray, floor: np.ndarray, last: tuple[int, float]) -> bool:
        present = scores >= floor
        n, total = int(present.sum()), float(scores[present].sum())
        return n > last[0] or (n == last[0] and total >= last[1] - 1e-4)

    for _ in range(200):
        units, n_pages = int(rng.integers(1, 4)), 6
        bound = rng.uniform(0.3, 1.0, (units, n_pages)).astype(np.float32)
        floor = rng.uniform(0.4, 0.6, units).astype(np.float32)
        last_n = int(rng.integers(0, units + 1))
        last = (last_n, float(rng.uniform(0.5, 0.9) * last_n))
        needed = _scores_needed(bound, floor, *last)
        for u in range(units):
            for p in range(n_pages):
                s = float(needed[u, p])
                at = bound[:, p].copy()
                if np.isinf(s):  # nothing this unit scores ranks the page
                    at[u] = 1e9
                    assert not ranks(at, floor, last)
                    continue
                at[u] = s
                assert ranks(at, floor, last), (u, p)
                if s > 0:
                    at[u] = s - 0.01
                    assert not ranks(at, floor, last), (u, p)


def test_occurrences_are_those_of_the_definition_where_cells_tie():
    """A text layer's page paints one exact vector over a token's cells and -1 elsewhere: equal cosines
    side by side, where the best cell of a step window is the first in raster order."""
    rng = np.random.default_rng(12)
    for trial in range(40):
        T = int(rng.integers(1, 5))
        H, W = int(rng.integers(3, 30)), int(rng.integers(3, 60))
        maps = np.full((T, H, W), -1.0, dtype=np.float32)
        for _ in range(int(rng.integers(1, 15))):
            y, x = int(rng.integers(0, H)), int(rng.integers(0, W))
            for j in range(T):
                xj = min(W - 1, x + 3 * j)
                maps[j, y : y + int(rng.integers(1, 3)), xj : xj + int(rng.integers(1, 4))] = rng.choice([0.5, 1.0])
        lens = [int(n) for n in rng.integers(1, 5, T)]
        limit = int(rng.integers(1, 25))
        want = _one_chain_at_a_time(maps, lens, 0.5, limit)
        got = locate(maps, lens, 0.5, limit)
        assert [(o.score, o.cells, o.token_boxes) for o in got] == want, trial

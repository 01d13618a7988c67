"""Verification: does the model read the query's tokens at an occurrence, rather than other tokens?

A chain of cells can score high for a query it does not show: a near spelling ("formatted" for
"formatter"), or a token whose vector sits close to the one written there. The model was trained to
make a token's mask-pooled feature closest to that token's vector among the whole vocabulary, so the
test here is the same one: pool each token's cells (its grown box, cells still looking like it), and
compare the query token's cosine with the best cosine of any *other* vocabulary token. The margin
(own - best other, per token, capped at 0 and averaged over the unit) is added, weighted, to the
occurrence's score: only a token that reads better as something else costs.

The pooled cells also say how well the token reads, better than its one chain cell: a token spanning
several characters is trained as the mean of its cells, and one cell of "English" can read 0.72 where
the pooled word reads 0.94. So a share of the occurrence's score can come from the pooled cosines
(``pooled_share``), the rest from the chain's cells (BENCHMARKS.md, "The pooled share").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from .localize import GROW_RATIO, Occurrence


def cell_rows(grid_h: int, grid_w: int, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """(H, W) row of each kept cell in the page's feature rows, -1 where no cell was kept."""
    grid = np.full((grid_h, grid_w), -1, dtype=np.int64)
    grid[ys, xs] = np.arange(len(ys))
    return grid


def pooled_tokens(occ: Occurrence, maps: np.ndarray, rows: np.ndarray, feats: np.ndarray) -> np.ndarray:
    """(T, d) unit mean features of each token's cells at the occurrence (as the training pooled masks)."""
    return pooled_all([([occ], maps)], rows, feats)


def pooled_all(groups: list[tuple[list[Occurrence], np.ndarray]], rows: np.ndarray, feats: np.ndarray) -> np.ndarray:
    """:func:`pooled_tokens` of the occurrences of several spellings on one page, each with its (T, H, W)
    maps, occurrence-major in order. A token's cells are those of its grown box still at ``GROW_RATIO``
    of its chain cell's cosine (the chain cell alone if none is). All boxes of a page are read at once,
    padded to the largest: a query of common words verifies thousands of occurrences, and one numpy call
    per token cost a long query more than its exact scoring (BENCHMARKS.md, "Serving under load")."""
    d = feats.shape[1]
    groups = [(occs, maps) for occs, maps in groups if occs]
    if not groups:
        return np.zeros((0, d), dtype=np.float32)
    maps = groups[0][1] if len(groups) == 1 else np.concatenate([m for _, m in groups])
    first = np.cumsum([0] + [m.shape[0] for _, m in groups])
    tok = np.concatenate([np.tile(np.arange(m.shape[0]) + f, len(o)) for (o, m), f in zip(groups, first)])
    cy, cx = np.asarray([c for o, _ in groups for occ in o for c in occ.cells], dtype=np.int64).reshape(-1, 2).T
    boxes = [b for o, _ in groups for occ in o for b in occ.token_boxes]
    x0, y0, x1, y1 = np.asarray(boxes, dtype=np.int64).reshape(-1, 4).T
    dy = np.arange(int((y1 - y0).max()) + 1)
    dx = np.arange(int((x1 - x0).max()) + 1)
    inside = (dy[None, :, None] <= (y1 - y0)[:, None, None]) & (dx[None, None, :] <= (x1 - x0)[:, None, None])
    ys = np.minimum(y0[:, None, None] + dy[None, :, None], maps.shape[1] - 1)
    xs = np.minimum(x0[:, None, None] + dx[None, None, :], maps.shape[2] - 1)
    r = rows[ys, xs]
    peak = maps[tok, cy, cx]
    keep = inside & (r >= 0) & (maps[tok[:, None, None], ys, xs] >= (GROW_RATIO * peak)[:, None, None])
    alone = ~keep.any(axis=(1, 2)) & (rows[cy, cx] >= 0)
    keep[alone, cy[alone] - y0[alone], cx[alone] - x0[alone]] = True
    n = keep.sum(axis=(1, 2))
    out = np.zeros((len(tok), d), dtype=np.float32)
    has = n > 0
    if has.any():
        sel = r[keep]  # pair-major, each box's cells in raster order
        starts = np.concatenate([[0], np.cumsum(n[has])[:-1]])
        v = np.add.reduceat(feats[sel], starts, axis=0) / n[has, None].astype(np.float32)
        out[has] = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-8)
    return out


def _excluded(per_token: np.ndarray | Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(token index, vocabulary id) pairs left out of the tokens' competitors: an id per token (its own), or
    an array of ids per token (its own and the other cuts of the query's letters, ``TokenClasses.alike``)."""
    ids = [np.atleast_1d(np.asarray(a, np.int64)) for a in per_token]
    return np.repeat(np.arange(len(ids)), [len(a) for a in ids]), np.concatenate(ids)


def _margins(
    pooled: np.ndarray, mine: np.ndarray, rows: np.ndarray, ids: np.ndarray, competitors: np.ndarray
) -> np.ndarray:
    """(N,) each pooled token's cosine with its own vector (``mine``) less its best with any other."""
    sims = pooled @ competitors.T  # (N, V)
    sims[rows, ids] = -np.inf
    return mine - sims.max(axis=1)


def margins(
    pooled: np.ndarray, own: np.ndarray, own_ids: np.ndarray | Sequence[np.ndarray], competitors: np.ndarray
) -> np.ndarray:
    """(N,) cos(pooled, own token) - max cos(pooled, any other vocabulary token); ``own_ids``: each row's
    own token id, or an array of ids per row that do not compete (see :func:`_excluded`)."""
    return _margins(pooled, np.einsum("nd,nd->n", pooled, own), *_excluded(own_ids), competitors)


def rescore(
    occs: list[Occurrence],
    maps: np.ndarray,
    rows: np.ndarray,
    feats: np.ndarray,
    own: np.ndarray,
    own_ids: np.ndarray | Sequence[np.ndarray],
    competitors: np.ndarray,
    weight: float,
    pooled_share: float = 0.0,
) -> list[Occurrence]:
    """Occurrences of one spelling re-scored: ``pooled_share`` of the score from the pooled tokens' cosines,
    the rest from the chain's, plus ``weight`` x mean token margin (capped at 0)."""
    return rescore_all([(occs, maps, own, own_ids)], rows, feats, competitors, weight, pooled_share)[0]


def rescore_all(
    groups: list[tuple[list[Occurrence], np.ndarray, np.ndarray, np.ndarray | Sequence[np.ndarray]]],
    rows: np.ndarray,
    feats: np.ndarray,
    competitors: np.ndarray,
    weight: float,
    pooled_share: float = 0.0,
    floors: Sequence[float] | None = None,
) -> list[list[Occurrence]]:
    """:func:`rescore` for the spellings found on one page — (occurrences, maps, own vectors, own ids)
    each — with one product against the vocabulary for all of them (a long query's page holds dozens:
    one product per spelling cost 1 ms each).

    ``floors`` (one per group): occurrences that cannot score that much are dropped before the product
    against the vocabulary, the costly part. The margins only lower a score (capped at 0), so the score
    without them bounds it: chains located under the threshold for the pooled cells to lift
    (``SearchOptions.pooled_reach``) cost one dot product per token unless they can reach it."""
    found = [(occs, vecs, tok_ids) for occs, _, vecs, tok_ids in groups if occs]
    if not found:
        return [list(occs) for occs, *_ in groups]
    pooled = pooled_all([(occs, maps) for occs, maps, _, _ in groups], rows, feats)
    own = np.concatenate([np.tile(vecs, (len(occs), 1)) for occs, vecs, _ in found])
    sizes = np.asarray([len(tok_ids) for occs, _, tok_ids in found for _ in occs])
    starts = np.cumsum(sizes) - sizes
    mine = np.einsum("nd,nd->n", pooled, own)
    # each occurrence's means in one call (a numpy mean per occurrence cost more than the margins)
    read = np.add.reduceat(mine, starts) / sizes
    chain = np.asarray([o.score for occs, _, _ in found for o in occs])
    bound = (1.0 - pooled_share) * chain + pooled_share * read
    live = np.ones(len(chain), dtype=bool)
    if floors is not None:
        live = bound >= np.repeat([f for (occs, *_), f in zip(groups, floors) if occs], [len(o) for o, _, _ in found])
    gain = np.zeros(len(chain))
    if live.any():
        tok_live = np.repeat(live, sizes)
        # the exclusions of each spelling's tokens, repeated for its occurrences without a Python loop over
        # them (a common word's page holds hundreds); rows renumbered to the live tokens
        ex_rows, ex_ids, base = [], [], 0
        for occs, _, tok_ids in found:
            rows_t, ids_t = _excluded(tok_ids)
            n_tok = len(tok_ids)
            ex_rows.append((base + n_tok * np.arange(len(occs))[:, None] + rows_t[None, :]).ravel())
            ex_ids.append(np.tile(ids_t, len(occs)))
            base += n_tok * len(occs)
        all_rows, all_ids = np.concatenate(ex_rows), np.concatenate(ex_ids)
        renum = np.cumsum(tok_live) - 1
        ex = tok_live[all_rows]
        m = _margins(pooled[tok_live], mine[tok_live], renum[all_rows[ex]], all_ids[ex], competitors)
        live_sizes = sizes[live]
        gain[live] = np.add.reduceat(np.minimum(m, 0.0), np.cumsum(live_sizes) - live_sizes) / live_sizes * weight
    scores = (bound + gain).tolist()
    keep = live.tolist()
    out, i = [], 0
    for occs, *_ in groups:
        kept = []
        for o in occs:
            if keep[i]:
                kept.append(replace(o, score=scores[i]))
            i += 1
        out.append(kept)
    return out


# ------------------------------------------------------------------------------------------------------
# word boundaries: is the matched word part of a longer one?
# ------------------------------------------------------------------------------------------------------


ALIKE_MAX_CHARS = 16  # the longest token text :meth:`TokenClasses.alike` looks up


@dataclass(frozen=True)
class TokenClasses:
    """What each vocabulary token says about word boundaries, from its text (a leading space = it starts a
    word): the word-boundary checks read the tokens the model sees left and right of a match."""

    starts_word: np.ndarray  # (V,) bool
    alnum: np.ndarray  # (V,) bool: letters and digits only (not punctuation, not a byte piece)
    bodies: tuple[str, ...]  # lower-case text without the leading space
    # text without the leading space, case kept -> the ids spelling it (with and without the space)
    spelled: dict[str, tuple[int, ...]] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, texts: list[str]) -> TokenClasses:
        bodies = tuple(t.lstrip(" ").lower() for t in texts)
        spelled: dict[str, list[int]] = {}
        for i, t in enumerate(texts):
            if t.strip(" "):
                spelled.setdefault(t.lstrip(" "), []).append(i)
        return cls(
            np.array([t.startswith(" ") for t in texts], dtype=bool),
            np.array([b.isalnum() for b in bodies], dtype=bool),
            bodies,
            {k: tuple(v) for k, v in spelled.items()},
        )

    def alike(self, text: str, start: int, end: int, own: int) -> np.ndarray:
        """Ids that do not compete with the query token ``own`` cut from ``text[start:end]``: itself and the
        tokens spelling ``text`` from its start (or a character before it) through at least its end —
        the same letters and more, cut elsewhere (" to" of "towards" cut " to" + "wards" read as " tow").
        The vocabulary check asks whether the model reads *other text* at a match, and counting a longer
        cut of the query's own letters as other text lost plainly printed words. A piece that leaves one of
        the token's letters out still competes: the left-out letter is where a near miss differs ("ap" of
        "app" is also in "Zapf"; "re" of "cre" also in "differences" for "diffcrences"). A token that
        starts a word is alike only where a word starts in ``text``; case counts (each case variant is a
        spelling of its own)."""
        out = [own]
        for p in range(max(0, start - 1), start + 1):
            for q in range(max(p + 1, end), min(len(text), p + ALIKE_MAX_CHARS) + 1):
                for t in self.spelled.get(text[p:q], ()):
                    if t != own and (not self.starts_word[t] or p == 0 or text[p - 1] == " "):
                        out.append(t)
        return np.asarray(out, dtype=np.int64)


WORD_END_CELLS = 3  # cells beyond the match read before the word is taken to end (or start) there
# a cell belongs to the word's own end (start) if one of its best tokens (at most this many, within
# WORD_END_NEAR of the best cosine) is part of it
WORD_END_TOP = 3
WORD_END_NEAR = 0.1
# left of a number, these between digits keep one number going ("15:53:00", "1,008.60"); "/" and "-"
# separate the parts of a date or a code, which a user searches alone ("2017" in "18/07/2017")
NUMBER_JOINERS = frozenset(".,:")


def word_continues(
    occs: list[Occurrence],
    rows: np.ndarray,
    feats: np.ndarray,
    competitors: np.ndarray,
    classes: TokenClasses,
    word: str,
    side: str = "end",
    letters: bool = False,
) -> np.ndarray:
    """(N,) bool: beyond each occurrence the model reads the *same* word going on, so the query word is not
    what is written there — right of it (``side="end"``): "correct" matched in "correctly", "click" in
    "clicking"; left of a number (``side="start"``): "27.10" in "127.10", "53.00" in "15:53:00".

    The query's tokens chain into a longer word's first tokens exactly (" cor"+"rect" is the start of
    " cor"+"rect"+"ly"), and on the dev benchmark such prefixes were a third of the wrong first pages of
    single words. A number's tokens carry no leading space (the query rule gives one only to a word that
    starts with a letter), so neither they nor the vocabulary check can tell where a number starts.
    Cells beyond the last (first) token's box on its chain cell's row, one by one: a background cell
    (not kept), punctuation, or a change between letters and digits bounds the word ("RM4.43" holds
    "4.43"), and so does, right of it, a token that starts a word; a token that is part of the query
    word's own end (start) moves on (the box stopped short), as does, left of a number, a point, comma
    or colon, after which a digit continues the number and anything else bounds it; any other
    letters/digits token continues the word.

    Left of a word that starts with a letter nothing is read (always False): a one-cell space between
    words reads as the previous word's last letters ("TAT HARDWARE": 'T', 'FT'; "OPERATOR MTRC": 'R',
    'ER'), so a tight space looks like a glued prefix ("WHOLESALE") there; reading it lost right answers
    on the dev benchmark, phrases most (BENCHMARKS.md, "The word-start check, for numbers"). Such a
    word's first query token carries the leading space (" SALE") that letters inside a longer word lack,
    which the vocabulary check weighs already. A spelling cut as printed after punctuation ("(see") lacks
    that space too, so with ``letters`` the left of a letter is read as the left of a number is.
    """
    assert side in ("end", "start"), side
    right = side == "end"
    word = word.lower()
    edge = word[-1:] if right else word[:1]  # the query's character next to the cells read
    out = np.zeros(len(occs), dtype=bool)
    if not right and not edge.isdigit() and not letters:
        return out
    W = rows.shape[1]
    pending = list(range(len(occs)))
    joined = np.zeros(len(occs), dtype=bool)  # a joiner read left of a number: a digit next continues it
    for d in range(1, WORD_END_CELLS + 1):
        idx, cell_rows_ = [], []
        for i in pending:
            if right:
                (cy, _), x = occs[i].cells[-1], occs[i].token_boxes[-1][2] + d
            else:
                (cy, _), x = occs[i].cells[0], occs[i].token_boxes[0][0] - d
            if 0 <= x < W and rows[cy, x] >= 0:
                idx.append(i)
                cell_rows_.append(rows[cy, x])
        if not idx:
            break
        sims = feats[np.asarray(cell_rows_)] @ competitors.T  # (n, V)
        top = np.argpartition(-sims, WORD_END_TOP, axis=1)[:, :WORD_END_TOP]
        top_sims = np.take_along_axis(sims, top, axis=1)
        best = top[np.arange(len(idx)), np.argmax(top_sims, axis=1)]
        pending = []
        for i, t1, tops, ts in zip(idx, best, top, top_sims):
            body = classes.bodies[t1]
            if not classes.alnum[t1]:
                if not right and body and set(body) <= NUMBER_JOINERS:
                    joined[i] = True
                    pending.append(i)
                continue
            if joined[i]:  # "15:" left of "53:00"
                out[i] = body[-1:].isdigit()
                continue
            if right and classes.starts_word[t1]:
                continue
            near = tops[ts >= ts.max() - WORD_END_NEAR]
            own = [
                t
                for t in near
                if classes.bodies[t]
                and classes.bodies[t]
                in (word[-(len(classes.bodies[t]) + 2) :] if right else word[: len(classes.bodies[t]) + 2])
            ]
            if own:
                pending.append(i)  # still the query word's own letters
                continue
            if edge.isalpha() != (body[:1] if right else body[-1:]).isalpha():
                continue
            out[i] = True
    return out


def word_breaks(
    occs: list[Occurrence],
    rows: np.ndarray,
    feats: np.ndarray,
    competitors: np.ndarray,
    classes: TokenClasses,
    word: str,
    inside: Sequence[bool],
) -> np.ndarray:
    """(N,) bool: between two tokens (``inside[j]``: the gap before token j is read — token j continues the
    word token j-1 is in, or, for a phrase, any token after the first) the model reads another word — the
    chain borrowed its pieces from neighbouring words ("inundation" read over "In this situation": " in" at
    "In", "ation" at the end of "situation"), or skipped a word between a phrase's words ("at time" over
    "at the time").

    The cells between token j-1's box and token j's box on the row of j-1's chain cell are read: two
    neighbouring cells whose best tokens both start a word with the same letter, and are no piece of the
    query word, read one word there (" t", " th", " this"). One such cell alone is no evidence: between
    the wide-set capitals of a receipt single cells read stray word starts (" sil", " pin" in "RIMBUNAN")."""
    word = word.lower()
    out = np.zeros(len(occs), dtype=bool)
    gaps: list[tuple[int, list[int]]] = []
    for i, o in enumerate(occs):
        for j in range(1, len(o.cells)):
            if inside[j]:
                cy = o.cells[j - 1][0]
                xs = range(max(0, o.token_boxes[j - 1][2] + 1), min(rows.shape[1], o.token_boxes[j][0]))
                gaps.append((i, [int(rows[cy, x]) for x in xs]))
    read = sorted({r for _, g in gaps for r in g if r >= 0})
    if not read:
        return out
    best = dict(zip(read, np.argmax(feats[np.asarray(read)] @ competitors.T, axis=1).tolist()))

    def starts(r: int) -> str:
        t = best.get(r, -1)
        ok = t >= 0 and classes.starts_word[t] and classes.alnum[t] and classes.bodies[t] not in word
        return classes.bodies[t][:1] if ok else ""

    for i, g in gaps:
        firsts = [starts(r) for r in g]
        out[i] |= any(a and a == b for a, b in zip(firsts, firsts[1:]))
    return out

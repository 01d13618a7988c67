"""Rank pages for a query: tokens → candidate cells (vector index) → exact scoring on stored features.

Stage 1 asks the vector index for the top cells of every query token (all spellings of all units in
one batch) and keeps the pages whose tokens all look present. Stage 2 loads those pages' features,
computes exact token maps and localises each unit (see ``localize``). A page's score is the mean over
the query's units of their best occurrence (0 for a unit not found); pages holding more units rank
first. Nothing under the threshold is returned, so a query written nowhere gives no hits.

Several words are more evidence than one: the chance that a chain of many tokens reads well by accident
falls with its length, so the words of a query of several words, and the words standing together, count
from the (lower, calibrated) phrase threshold. A page is answered only where one word reaches the
threshold, or the query's words stand together at the phrase threshold (``SearchOptions``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, NamedTuple, cast

import numpy as np
from threadpoolctl import threadpool_limits

from ..filters import SearchFilter, iso_utc
from ..geometry import mostly_inside
from ..textcut import cut, embed_cut
from ..tokenocr_model.interface import QueryEmbedder, QueryTokens, Token
from .localize import Frame, Occurrence, chain_estimate, dense_maps, locate
from .query import Unit, case_variants, parse_query
from .verify import TokenClasses, cell_rows, rescore_all, word_breaks, word_continues

if TYPE_CHECKING:
    from ..storage.records import PageFeatures, PageInfo


@dataclass
class Hit:
    path: str
    page: int  # 1-based
    score: float
    boxes: list[list[float]]  # normalised [x0, y0, x1, y1], origin top-left
    doc_id: int
    page_id: int
    width: int
    height: int
    # what the engine read where the query matched: each query word's (or the whole query's) best
    # occurrence as the spelling that matched it ("INVOICE" for the query invoice). A text-layer page
    # matches token by token, so this is what its text layer says; on a scan, the query's tokens as matched
    text: str = ""
    modified: str | None = None  # the file's modification time, ISO 8601 UTC (``filters.iso_utc``)
    pages: int = 0  # pages of the document
    kind: str = ""  # "pdf" | "image"


@dataclass
class SearchResult:
    query: str
    hits: list[Hit]
    took_ms: float
    total: int = 0  # pages above the threshold (before k/offset)


@dataclass
class _Spelling:
    """One spelling of one unit: its tokens' rows in the batched query matrix."""

    unit: int
    rows: list[int]
    lens: list[int]
    ids: list[int]  # the tokens' vocabulary ids
    text: str = ""  # the spelling (a case variant of the unit)
    # per token, the ids the vocabulary check does not count against it (``TokenClasses.alike``); empty:
    # its own id only
    alike: list[np.ndarray] = field(default_factory=list)
    glued: bool = False  # cut as printed right after punctuation ("(see", "\\Swarrow"): no leading space
    # stage 1 only, in a big index: the word's first letter a token of its own, the rest cut as inside a word
    # (" m" + "aterial"). The model often reads a word's first letter apart, and token postings file a cell
    # under the tokens it reads best, so such a page is listed under none of the query cut's tokens (" material")
    # and stage 1 could not offer it however many cells it read. Stage 2 scores the page by the query's own
    # cuts (BENCHMARKS.md, "A word's first letter read apart")
    split: bool = False


@dataclass
class _Plan:
    units: list[Unit]  # the query's words/phrases, then (for 2+ plain words) the words as one phrase
    n_query_units: int = 0  # units[:n_query_units] are the query's own; the rest only break ties
    spellings: list[_Spelling] = field(default_factory=list)
    vectors: np.ndarray | None = None  # (R, d) in index space


class _PageData(NamedTuple):
    feats: PageFeatures
    info: PageInfo
    sims: np.ndarray  # (n, R) cosine of every kept cell with every row of the plan's vectors


@dataclass(frozen=True)
class SearchOptions:
    threshold: float
    # several words (a quoted phrase, a query's words and those words standing together) count from this
    # score when it is lower: the model's calibrated threshold for phrases written nowhere (None: threshold)
    phrase_threshold: float | None = None
    # pages built from a text layer carry the tokens' exact vectors: a true match scores ~1 there (int8
    # storage keeps cos > 0.999), while a neighbouring spelling's composed vector can reach 0.98
    text_layer_threshold: float = 0.99
    # vector-index neighbours per query token: ``cells_per_token`` up to ``crowd_pages`` pages, then growing with
    # the square root of the pages up to ``max_cells_per_token``. A common piece ("ical", "0") fills a fixed
    # number of top cells with the pages that hold it most, so in a big index the page holding a rare word
    # loses its other pieces and falls out of the candidates; asking for cells in proportion to the pages
    # would cost stage 1 as much as the index grows (BENCHMARKS.md, "Index format and scale")
    cells_per_token: int = 4096
    crowd_pages: int = 256
    max_cells_per_token: int = 16384
    # an index of token postings (a big one, ``storage.postings``) reads a token's cells best first from the start
    # of its list, at little cost however many: ``listed_cells_per_token`` up to ``listed_pages`` pages, then in
    # proportion to the pages up to ``max_listed_cells_per_token``. The relevant page of a dev query was among the
    # candidates at 2,500 pages for 201 of 220 queries, against 187 at the rule above; at 10,000 pages for 183 at
    # 65,536 cells and 195 at 262,144, for 30 ms more of stage 1 (BENCHMARKS.md, "Index format and scale")
    listed_cells_per_token: int = 65536
    listed_pages: int = 2500
    max_listed_cells_per_token: int = 262144
    # pages scored exactly (stage 2). Stage 1 orders pages by each unit's best chain of retrieved cells
    # (``chain_estimate``), which puts nearly every rare word's and phrase's page within the first 32. The
    # mean of each token's best cell anywhere on the page (a bag of tokens, used before and still where cell
    # positions are unknown) lets dense pages collect a rare word's common pieces ("v", "ers", "at", "ile")
    # and needs about twice the pages for the same recall (BENCHMARKS.md, "Stage 1 and candidate pages")
    min_candidate_pages: int = 32
    max_candidate_pages: int = 160
    max_occurrences: int = 20
    # verification on image pages (see ``verify``): the whole vocabulary in index space, and the weight of
    # the mean token margin (capped at 0) added to an occurrence's score
    competitors: np.ndarray | None = None
    verify_weight: float = 0.0
    # the word-end check (``verify.word_continues``, with verification): what the vocabulary's tokens say
    # about word boundaries, and the score an occurrence loses where its word goes on ("correct" in
    # "correctly"). Any value above the margin between a prefix and the whole word works alike on the dev
    # benchmark (0.05, 0.1, 0.2: R@1 within 0.005), so it acts as a filter
    token_classes: TokenClasses | None = None
    word_end_penalty: float = 0.05
    # the word-start check (the same reading, left of a number's match: "27.10" in "127.10", "53.00" in
    # "15:53:00"), with the same penalty
    word_start_penalty: float = 0.05
    # the vocabulary check leaves out other cuts of the query's letters (``TokenClasses.alike``)
    alike_cuts: bool = True
    # a one-word query is also searched as printed right after punctuation: "(see", "\\Swarrow", ".PDF_TITLE", "{n,n+1"
    # carry no leading space (the query rule gives one to every word starting with a letter), so the spaced
    # spelling's first token reads lower there. Such a match counts only where no letter or digit is read
    # left of it: inside a longer word it reads well ("serve" in "observe", 0.81), so there it loses
    # ``glued_inside_penalty``, enough to drop it (the spaced spelling still scores a word that starts there)
    glued: bool = True
    glued_inside_penalty: float = 1.0
    # the score a match loses where another word starts between two tokens of one of its words
    # (``verify.word_breaks``)
    word_break_penalty: float = 1.0
    # the same reading between the words of a phrase: its chain may skip a word ("at time" read over "at the
    # time", "at this time"), and then loses the same penalty
    phrase_breaks: bool = True
    # with verification: the share of an occurrence's score read from its tokens' pooled cells rather than
    # its chain's single cells (``verify.rescore_all``); chains are then located from ``pooled_reach`` under
    # the threshold, since the pooled cosines can lift them over it: on the dev benchmark's clean scans 0.1
    # finds what 0.3 finds (the calibration locates from 0.3), and chains that cannot reach the threshold
    # skip the costly part of verification (BENCHMARKS.md, "The pooled share")
    pooled_share: float = 0.0
    pooled_reach: float = 0.1
    # the same for units that count from the phrase threshold (several words, or a word of several; None:
    # ``pooled_reach``): their chains are located from that threshold itself. Below it, a phrase's common words
    # chain on every page, the costliest searches; on the dev sets and the receipts every query's first page
    # stayed the same without them, at a quarter less CPU (BENCHMARKS.md, "The pooled share": the reach for phrases)
    phrase_reach: float | None = 0.0
    # a page where the query's words stand together holds them all (even one not read well enough on its
    # own) and scores as they read there, their best joint occurrence: not as the mean of each word's best
    # occurrence anywhere on the page, which let pages that hold the words apart, or read one of them well
    # elsewhere, outrank the page that prints them together (BENCHMARKS.md, "Pages where the words stand
    # together"). False: the ranking before
    rank_by_phrase: bool = True
    # stage 1 also looks for each word with its first letter a token of its own (``_Spelling.split``)
    split_first: bool = True


_FIRST_BLOCK = 256  # pages stage 1 chains before it first asks whether the rest can be candidates


def _page_index(ids: dict[int, np.ndarray]) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """The pages (sorted ids) of the retrieved cells of every row, and each cell's page index into them: by a
    table over the ids where they are dense, as an index's page ids are (sorting millions of retrieved cells'
    ids to find their pages was a tenth of a search in a big index)."""
    parts = [a for a in ids.values() if len(a)]
    if not parts:
        return np.zeros(0, np.int64), {r: np.zeros(0, np.int64) for r in ids}
    top = max(int(a.max()) for a in parts)
    if top > 4 * sum(len(a) for a in parts) or min(int(a.min()) for a in parts) < 0:
        pages = np.unique(np.concatenate(parts))
        return pages, {r: np.searchsorted(pages, a) for r, a in ids.items()}
    seen = np.zeros(top + 1, dtype=bool)
    for a in parts:
        seen[a] = True
    index = np.cumsum(seen, dtype=np.int64) - 1
    return np.flatnonzero(seen), {r: index[a] for r, a in ids.items()}


def _scores_needed(bound: np.ndarray, floor: np.ndarray, last_units: int, last_total: float) -> np.ndarray:
    """(units, pages): the least score of each unit on each page with which the page can rank with the last
    candidate so far (``last_units`` units present, ``last_total`` their scores), each other unit at its
    bound (``bound``, (units, pages)): 0 where the others alone rank it so, inf where nothing can. Pages rank
    by the units present (at least ``floor``), then by their total (``Searcher._candidates``)."""
    eps = 1e-4  # pages tied with the last candidate are candidates too: a tie stays
    present = bound >= floor[:, None]
    held = np.where(present, bound, 0.0)
    others_n = present.sum(axis=0)[None, :] - present
    others_t = held.sum(axis=0)[None, :] - held
    without = (others_n > last_units) | ((others_n == last_units) & (others_t >= last_total - eps))
    with_it = np.where(
        others_n + 1 > last_units,
        floor[:, None],
        np.where(others_n + 1 == last_units, np.maximum(floor[:, None], last_total - others_t), np.inf),
    )
    return np.where(without, 0.0, with_it).astype(np.float32)


def _cells_that_count(
    rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    places: list[np.ndarray],
    best: np.ndarray,
    fills: list[float],
    target: np.ndarray,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The retrieved cells of a spelling's tokens (``rows``, as :func:`chain_estimate` takes them; ``places``:
    each cell's page, an index into ``target``) that can be part of a chain scoring its page's ``target``.
    Each of a chain's terms is at most the higher of its token's best cell on the page (``best``, (T,
    pages)) and the fill, so a cell of token j under T x target less the others' best terms cannot reach
    it, neither as itself nor as the place a chain goes on from after a token counted at the fill (the fill
    is lower still). Pages whose chains all fall under the target then score lower than they would, and
    rank under it either way."""
    T = len(rows)
    terms = np.maximum(best, np.asarray(fills, np.float32)[:, None])
    others = terms.sum(axis=0)[None, :] - terms  # (T, pages): the best the other tokens can add
    need = T * target - others - 1e-4 * T  # a margin for float32 sums: a tie with the target stays
    out = []
    for j, ((ids, scores, cells), at) in enumerate(zip(rows, places)):
        keep = scores >= need[j][at]
        out.append((ids[keep], scores[keep], cells[keep]))
    return out


def _merge(occs: list[Occurrence], limit: int) -> list[Occurrence]:
    """Occurrences of one unit found by several spellings: best first, one per place."""
    kept: list[Occurrence] = []
    for o in sorted(occs, key=lambda o: -o.score):
        if not any(mostly_inside(o.box, k.box) for k in kept):
            kept.append(o)
            if len(kept) >= limit:
                break
    return kept


def _merge_keep_order(occs: list[Occurrence]) -> list[Occurrence]:
    """Drop occurrences overlapping an earlier one (a word box inside its phrase box)."""
    kept: list[Occurrence] = []
    for o in occs:
        if not any(mostly_inside(o.box, k.box) for k in kept):
            kept.append(o)
    return kept


class Searcher:
    """Stateless over queries: holds the encoder and the store, never creates them."""

    def __init__(self, encoder: QueryEmbedder, store, options: SearchOptions) -> None:
        self.encoder = encoder
        self.store = store
        self.opt = options

    def _thresholds(self, exact: bool) -> tuple[float, float]:
        """(word, phrase) thresholds on a page: a text-layer page's tokens match exactly or not at all."""
        thr = self.opt.threshold
        phrase = thr if self.opt.phrase_threshold is None else min(thr, self.opt.phrase_threshold)
        if exact:
            thr = phrase = max(thr, self.opt.text_layer_threshold)
        return thr, phrase

    def _reach(self, several: bool = False) -> float:
        """How far under the threshold image pages' chains are located: their pooled cells can lift them;
        ``several``: for a unit that counts from the phrase threshold."""
        verified = self.opt.competitors is not None and self.opt.verify_weight > 0
        if not (verified and self.opt.pooled_share > 0):
            return 0.0
        if several and self.opt.phrase_reach is not None:
            return self.opt.phrase_reach
        return self.opt.pooled_reach

    @staticmethod
    def _several(plan: _Plan, unit: int) -> bool:
        """Does ``unit`` count from the phrase threshold: several words, or one word of several."""
        return plan.n_query_units > 1 or len(plan.units[unit].text.split()) > 1

    def plan(self, query: str, max_chars: int) -> _Plan:
        units = parse_query(query, max_chars)
        plan = _Plan(list(units), n_query_units=len(units))
        if len(units) >= 2 and not any(u.phrase for u in units):
            # pages where the words also stand together, in order, rank above pages that merely hold them
            plan.units.append(Unit(" ".join(u.text for u in units), True))
        vecs: list[np.ndarray] = []
        n = 0
        classes = self.opt.token_classes if self.opt.alike_cuts else None
        # only where stage 1 reads token postings: a vector index scores every cell by its exact cosine
        split_first = self.opt.split_first and self.store.token_lists()
        for ui, unit in enumerate(plan.units):
            variants = case_variants(unit.text)
            # a one-word query only: each word of several would double the costliest searches (phrases'
            # CPU a search 0.70 -> 1.18 s) for words that count from the phrase threshold anyway
            one_word = plan.n_query_units == 1 and not unit.phrase and " " not in unit.text
            glued = self._glued(variants) if self.opt.glued and one_word else []
            own = self._embeddings(variants)
            split = self._split_first(own) if split_first and ui < plan.n_query_units else []
            cuts = [(q, "") for q in own] + [(q, "glued") for q in glued] + [(q, "split") for q in split]
            for q, how in cuts:
                # a token covering no character (a lone leading-space piece) is written nowhere
                keep = [i for i, t in enumerate(q.tokens) if t.end > t.start]
                if not keep:
                    continue
                rows = list(range(n, n + len(keep)))
                n += len(keep)
                vecs.append(np.asarray(q.vectors, dtype=np.float32)[keep])
                plan.spellings.append(
                    _Spelling(
                        ui,
                        rows,
                        [q.tokens[i].end - q.tokens[i].start for i in keep],
                        [q.tokens[i].id for i in keep],
                        q.text.strip(),
                        [classes.alike(q.text, q.tokens[i].start, q.tokens[i].end, q.tokens[i].id) for i in keep]
                        if classes is not None
                        else [],
                        how == "glued",
                        how == "split",
                    )
                )
        if vecs:
            plan.vectors = self.store.project_queries(np.concatenate(vecs))
        return plan

    def _embeddings(self, spellings: list[str]) -> list[QueryTokens]:
        """Each spelling cut by the model's query rule (as image pages show it), then, where it differs,
        as text-layer pages carry it (``textcut.embed_cut``: CJK one character at a time, edge punctuation
        alone), so a query for part of a Chinese line matches the line exactly."""
        out: list[QueryTokens] = []
        seen: set[tuple[int, ...]] = set()
        for spelling in spellings:
            cands = [self.encoder.embed_query(spelling)]
            if cut(spelling) != [(0, spelling)]:
                cands.append(embed_cut(self.encoder, spelling))
            for q in cands:
                ids = tuple(t.id for t in q.tokens)
                if ids not in seen:
                    seen.add(ids)
                    out.append(q)
        return out

    def _glued(self, spellings: list[str]) -> list[QueryTokens]:
        """The spellings that start with a letter as the tokenizer cuts them right after an opening
        bracket, that bracket's tokens dropped; only where the bracket is a token of its own."""
        out: list[QueryTokens] = []
        for spelling in spellings:
            if not spelling[:1].isalpha():
                continue  # no leading space anyway
            q = self.encoder.embed_query("(" + spelling)
            first = next((i for i, t in enumerate(q.tokens) if t.end > 1), len(q.tokens))
            if first == len(q.tokens) or q.tokens[first].start < 1:
                continue
            tokens = [Token(t.id, t.piece, t.start - 1, t.end - 1) for t in q.tokens[first:]]
            vectors = np.asarray(q.vectors, dtype=np.float32)[first:]
            out.append(QueryTokens(text=spelling, tokens=tokens, vectors=vectors))
        return out

    def _split_first(self, own: list[QueryTokens]) -> list[QueryTokens]:
        """Each cut of ``own`` whose first token holds the first two letters or more of a word of 4 or more, as
        that word's first letter (with its leading space), then the rest as cut inside a word (:meth:`_glued`)."""
        seen = {tuple(t.id for t in q.tokens) for q in own}
        out: list[QueryTokens] = []
        for q in own:
            spelling = q.text.strip()
            first = q.tokens[0]
            if len(spelling) < 4 or " " in spelling or not spelling[:2].isalpha() or first.end - first.start < 2:
                continue
            head, rest = self.encoder.embed_query(spelling[0]), self._glued([spelling[1:]])
            if len(head.tokens) != 1 or not rest:
                continue
            tokens = head.tokens + [Token(t.id, t.piece, t.start + 1, t.end + 1) for t in rest[0].tokens]
            ids = tuple(t.id for t in tokens)
            if ids in seen:
                continue
            seen.add(ids)
            vectors = np.concatenate([np.asarray(head.vectors, np.float32), np.asarray(rest[0].vectors, np.float32)])
            out.append(QueryTokens(text=spelling, tokens=tokens, vectors=vectors))
        return out

    def _cells_per_token(self, allowed: np.ndarray | None) -> int:
        """Top cells asked per query token: more as the pages competing for them grow (``SearchOptions``)."""
        pages = len(allowed) if allowed is not None else self.store.page_count()
        if self.store.token_lists():
            listed = self.opt.listed_cells_per_token
            grown = round(listed * pages / self.opt.listed_pages)
            return max(listed, min(self.opt.max_listed_cells_per_token, grown))
        base = self.opt.cells_per_token
        if pages <= self.opt.crowd_pages:
            return base
        return max(base, int(min(self.opt.max_cells_per_token, round(base * (pages / self.opt.crowd_pages) ** 0.5))))

    def _candidates(self, plan: _Plan, want: int, allowed: np.ndarray | None = None) -> list[int]:
        """Pages likely to hold the units, best first (stage 1): a unit's estimate on a page is its best
        chain of retrieved cells (``chain_estimate``), or, where the index has no cell positions (a
        snapshot saved before it kept them), the mean of its tokens' best retrieved cells.

        ``allowed`` (a search filter's pages, sorted): only these compete. As few of them as stage 2
        scores anyway are all candidates, scored exactly without asking the vector index; more, and the
        vector index looks for the top cells among their vectors only, so a filtered query finds its
        pages however far below the unfiltered top cells they are."""
        assert plan.vectors is not None
        if allowed is not None and len(allowed) <= max(
            min(want, self.opt.max_candidate_pages), self.opt.min_candidate_pages
        ):
            return allowed.tolist()
        # glued spellings (``SearchOptions.glued``) take no part: their top cells are mostly inside longer
        # words, which only stage 2 reads, and they crowded pages out ("material" lost its page); nor does the
        # joint phrase of the query's words, which only orders the pages stage 2 scores
        nq = plan.n_query_units
        spellings = [sp for sp in plan.spellings if not sp.glued and sp.unit < nq]
        used = sorted({r for sp in spellings for r in sp.rows})
        if not used:
            return []
        # a token repeats across a query's words and spellings: search each once
        uniq, inverse = np.unique(plan.vectors[used], axis=0, return_inverse=True)
        found_rows = self.store.search_cells_at(uniq, self._cells_per_token(allowed), allowed)
        at = dict(zip(used, inverse.reshape(-1).tolist()))
        per_row = {r: found_rows[at[r]] for r in used}
        pages, at_page = _page_index({r: ids for r, (ids, _, _) in per_row.items()})
        if len(pages) == 0:
            return []
        placed = all(bool((cells >= 0).all()) for _, _, cells in per_row.values())
        top = np.zeros((len(plan.vectors), len(pages)), dtype=np.float32)  # each row's best retrieved cell a page
        for r, (_, scores, _) in per_row.items():
            np.maximum.at(top[r], at_page[r], scores)
        thr, phrase = self._thresholds(False)
        thr, phrase = thr - self._reach(), phrase - self._reach(True)  # where stage 2 starts locating chains
        floor = 0.8 * np.array([phrase if self._several(plan, u) else thr for u in range(nq)])[:, None]

        def rank(unit_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            """Per page: the units that look present, and the sum of their scores (the order, in that order)."""
            present = unit_score >= floor
            return present.sum(axis=0), np.where(present, unit_score, 0.0).sum(axis=0)

        unit_score = np.zeros((nq, len(pages)), dtype=np.float32)  # best spelling per unit
        if not placed:  # the bag-of-tokens estimate
            for sp in spellings:
                np.maximum(unit_score[sp.unit], top[sp.rows].mean(axis=0), out=unit_score[sp.unit])
        else:
            self._chain_units(spellings, per_row, at_page, top, pages, rank, floor[:, 0], unit_score, want)
        n_units, total = rank(unit_score)
        order = np.lexsort((pages, -total, -n_units))
        order = order[n_units[order] > 0]
        n = max(want, self.opt.min_candidate_pages)
        if len(order) > n:  # pages tied with the last one kept are kept too (exact text-layer matches tie)
            last = order[n - 1]
            tied = (n_units[order[n:]] == n_units[last]) & (total[order[n:]] >= total[last] - 1e-6)
            n += int(np.argmin(tied)) if not tied.all() else len(tied)
        return pages[order][: min(n, self.opt.max_candidate_pages)].tolist()

    def _chain_units(
        self,
        spellings: list[_Spelling],
        per_row: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]],
        at_page: dict[int, np.ndarray],
        top: np.ndarray,
        pages: np.ndarray,
        rank: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
        floor: np.ndarray,
        unit_score: np.ndarray,
        want: int,
    ) -> None:
        """Fill ``unit_score`` (units, pages) with each unit's best chain estimate where it can decide the
        candidates: chaining every page that holds a retrieved cell was most of a search in a big index. A
        page's chain estimate is at most the mean of its tokens' best retrieved cells, a missing one counting
        the fill (``chain_estimate``), so pages are chained in blocks in the order of that bound until the
        next page's bound ranks below the page that would be the last candidate: the pages left unchained
        cannot be candidates, and the candidates are those of chaining them all.

        That bound is loose (a page of common pieces holds each somewhere), so most pages of a big index are
        chained; a block after the first leaves out the cells that cannot lift their page to the last candidate
        so far (``_scores_needed``, ``_cells_that_count``), which keeps the candidates and cuts the chaining."""
        fills = {r: float(scores.min()) if len(scores) else 0.0 for r, (_, scores, _) in per_row.items()}
        exact = np.where(top >= self.opt.text_layer_threshold, top, 0.0)  # text-layer cells only
        bound = np.zeros_like(unit_score)
        for sp in spellings:
            terms = np.maximum(top[sp.rows], np.array([[fills[r]] for r in sp.rows], np.float32))
            np.maximum(bound[sp.unit], terms.mean(axis=0), out=bound[sp.unit])
        n_bound, total_bound = rank(bound)
        by_bound = np.lexsort((pages, -total_bound, -n_bound))
        by_bound = by_bound[n_bound[by_bound] > 0]
        need = max(want, self.opt.min_candidate_pages)
        # blocks of _FIRST_BLOCK pages (or 4x the candidates), then twice the last; each row's cells grouped once
        first = max(_FIRST_BLOCK, 4 * need)
        ends = [0]
        while ends[-1] < len(by_bound):
            ends.append(min(len(by_bound), first if ends[-1] == 0 else 3 * ends[-1] - 2 * ends[-2]))
        block_of = np.full(len(pages), len(ends), dtype=np.int16)  # pages the bound leaves out: after every block
        for b in range(1, len(ends)):
            block_of[by_bound[ends[b - 1] : ends[b]]] = b
        grouped = {}
        for r, (ids, scores, cells) in per_row.items():
            key = block_of[at_page[r]]
            order = np.argsort(key, kind="stable")  # a radix sort of 16-bit keys
            bounds = np.searchsorted(key[order], np.arange(1, len(ends) + 1))
            grouped[r] = (ids[order], scores[order], cells[order], bounds, at_page[r][order])
        last: tuple[int, float] | None = None  # the last candidate so far: units present, their total
        in_block = np.zeros(len(pages), np.int64)  # a page's place in its block
        for b in range(1, len(ends)):
            blk = np.sort(by_bound[ends[b - 1] : ends[b]])
            done = ends[b]
            needed = None if last is None else _scores_needed(bound[:, blk], floor, *last)
            in_block[blk] = np.arange(len(blk))
            for sp in spellings:
                rows, places = [], []
                for r in sp.rows:
                    ids, scores, cells, bounds, at = grouped[r]
                    lo, hi = bounds[b - 1], bounds[b]
                    rows.append((ids[lo:hi], scores[lo:hi], cells[lo:hi]))
                    places.append(at[lo:hi])
                row_fills = [fills[r] for r in sp.rows]
                if needed is not None:
                    places = [in_block[at] for at in places]
                    best = top[np.ix_(np.asarray(sp.rows), blk)]
                    rows = _cells_that_count(rows, places, best, row_fills, needed[sp.unit])
                est = chain_estimate(rows, sp.lens, pages[blk], row_fills)
                # every token written exactly on the page (a text layer): its retrieved cells can miss a
                # code's repeated piece where it stands ("-" of INV-2023-0042), and then the chain estimate
                # fell under a raised threshold's floor and lost the exact match
                ex = exact[np.ix_(np.asarray(sp.rows), blk)]
                est = np.where(ex.min(axis=0) >= self.opt.text_layer_threshold, np.maximum(est, ex.mean(axis=0)), est)
                unit_score[sp.unit, blk] = np.maximum(unit_score[sp.unit, blk], est)
            if done >= len(by_bound):
                break
            n_ch, total_ch = rank(unit_score[:, by_bound[:done]])  # the pages chained so far
            if len(n_ch) < need:
                continue
            kth = np.lexsort((-total_ch, -n_ch))[need - 1]
            last = int(n_ch[kth]), float(total_ch[kth])
            nxt = by_bound[done]
            if n_bound[nxt] < n_ch[kth] or (n_bound[nxt] == n_ch[kth] and total_bound[nxt] < total_ch[kth] - 1e-5):
                break

    def _pages(self, plan: _Plan, page_ids: list[int], cache: dict[int, _PageData | None]) -> dict[int, _PageData]:
        """Stored features, info and query similarities of pages, each read and computed once a search
        (the joint phrase scores pages its words already scored)."""
        assert plan.vectors is not None
        new = [pid for pid in page_ids if pid not in cache]
        if new:
            feats = self.store.page_features(new)
            infos = self.store.pages(new)
            for pid in new:
                pf = feats.get(pid)
                ok = pf is not None and len(pf.ys) > 0 and pid in infos
                cache[pid] = _PageData(pf, infos[pid], pf.similarities(plan.vectors)) if ok else None
        return {pid: cast(_PageData, cache[pid]) for pid in page_ids if cache[pid] is not None}

    def score_pages(
        self,
        plan: _Plan,
        page_ids: list[int],
        units: range | None = None,
        cache: dict[int, _PageData | None] | None = None,
    ) -> dict[int, list[list[Occurrence]]]:
        """Occurrences of every unit (or of ``units`` only; the others stay empty) on every page (stage 2,
        exact). ``cache``: pages read by an earlier call for the same plan."""
        assert plan.vectors is not None
        pages = self._pages(plan, page_ids, {} if cache is None else cache)
        out: dict[int, list[list[Occurrence]]] = {}
        for pid, (pf, info, sims) in pages.items():
            exact = info.source == "text"
            word_thr, phrase_thr = self._thresholds(exact)
            # a unit's spellings can only match if their token rows reach the threshold somewhere
            peak = sims.max(axis=0)
            verify = not exact and self.opt.competitors is not None and self.opt.verify_weight > 0
            frame = Frame.of_text(pf.grid_h, pf.grid_w, pf.ys, pf.xs)
            rows = cell_rows(frame.h, frame.w, pf.ys - frame.y0, pf.xs - frame.x0) if verify else None
            per_unit: list[list[Occurrence]] = [[] for _ in plan.units]
            found: list[tuple[_Spelling, np.ndarray, list[Occurrence]]] = []
            several = [self._several(plan, u) for u in range(len(plan.units))]
            unit_thr = [phrase_thr if sev else word_thr for sev in several]
            reach = [self._reach(sev) if verify else 0.0 for sev in several]
            for sp in plan.spellings:
                thr = unit_thr[sp.unit] - reach[sp.unit]  # where chains are located from
                if sp.split or peak[sp.rows].mean() < thr:
                    continue
                if units is not None and sp.unit not in units:
                    continue
                maps = dense_maps(frame, pf.ys, pf.xs, sims[:, sp.rows])
                if exact:  # every token must be there exactly, not just the mean of them
                    maps[maps < self.opt.text_layer_threshold] = -1.0
                found.append((sp, maps, locate(maps, sp.lens, thr, self.opt.max_occurrences, frame)))
            if verify and found:
                assert self.opt.competitors is not None
                rescored = rescore_all(
                    [(occs, maps, plan.vectors[sp.rows], sp.alike or np.asarray(sp.ids)) for sp, maps, occs in found],
                    cast(np.ndarray, rows),
                    pf.feats,
                    self.opt.competitors,
                    self.opt.verify_weight,
                    self.opt.pooled_share,
                    [unit_thr[sp.unit] for sp, _, _ in found],
                )
                found = [(sp, maps, occs) for (sp, maps, _), occs in zip(found, rescored)]
            for sp, _, occs in found:
                thr = unit_thr[sp.unit]
                if verify:
                    if self.opt.token_classes is not None:
                        words = plan.units[sp.unit].text.split()
                        occs = self._word_bounds(
                            occs, cast(np.ndarray, rows), pf.feats, words[0], words[-1], sp.glued, sp.ids, sp.text
                        )
                    occs = [o for o in occs if o.score >= thr]  # located under it, or lowered by a margin
                per_unit[sp.unit].extend(replace(o, text=sp.text) for o in occs)
            out[pid] = [_merge(occ, self.opt.max_occurrences) for occ in per_unit]
        return out

    def _word_bounds(
        self,
        occs: list[Occurrence],
        rows: np.ndarray,
        feats: np.ndarray,
        first: str,
        last: str,
        glued: bool = False,
        ids: Sequence[int] = (),
        text: str = "",
    ) -> list[Occurrence]:
        """Occurrences whose word goes on (``verify.word_continues``) lose the word-end penalty right of the
        unit's ``last`` word and the word-start penalty left of its ``first`` (read left of letters too for a
        ``glued`` spelling), and those read as another word between two pieces of one of the spelling's words
        (``verify.word_breaks``; ``ids``: the spelling's tokens, ``text``: the spelling) lose the word-break
        penalty; read best first until one
        that loses neither: the ones below it cannot become the unit's best on this page, so they are not
        read (a common word's 20 occurrences a page cost one or two reads, not 20; the page scores and
        ranking are those of reading all)."""
        occs = sorted(occs, key=lambda o: -o.score)
        assert self.opt.competitors is not None and self.opt.token_classes is not None
        ends = [
            (side, word, pen)
            for side, word, pen in (
                ("end", last, self.opt.word_end_penalty),
                ("start", first, self.opt.glued_inside_penalty if glued else self.opt.word_start_penalty),
            )
            if pen > 0
        ]
        classes = self.opt.token_classes
        several = self.opt.phrase_breaks and " " in text.strip()
        inside = [j > 0 and (several or not classes.starts_word[t]) for j, t in enumerate(ids)]
        breaks = self.opt.word_break_penalty > 0 and any(inside)
        for i, o in enumerate(occs):
            loss = sum(
                pen
                for side, word, pen in ends
                if word_continues([o], rows, feats, self.opt.competitors, classes, word, side, letters=glued)[0]
            )
            if breaks and word_breaks([o], rows, feats, self.opt.competitors, classes, text, inside)[0]:
                loss += self.opt.word_break_penalty
            if not loss:
                break
            occs[i] = replace(o, score=o.score - loss)
        return occs

    def _answers(self, plan: _Plan, own: list[list[Occurrence]], page: _PageData | None) -> bool:
        """Is the page an answer: a word of the query at the threshold, or several words (a quoted
        phrase) at the phrase threshold — not only words each under the threshold."""
        assert page is not None
        word_thr, _ = self._thresholds(page.info.source == "text")
        return any(
            occ and (len(plan.units[u].text.split()) > 1 or occ[0].score >= word_thr) for u, occ in enumerate(own)
        )

    def _score_joint(
        self,
        plan: _Plan,
        scored: dict[int, list[list[Occurrence]]],
        window_end: int,
        cache: dict[int, _PageData | None],
    ) -> None:
        """Add the occurrences of the query's words as one phrase to ``scored`` where they can change the
        result: pages rank by how many words they hold, then by the phrase, and a page where the words stand
        together holds them all (``SearchOptions.rank_by_phrase``), so only pages holding one of them (or,
        without that, as many as the page at ``window_end``) need it — the phrase is most of a long query's
        chaining, and the ranking is the same as with it looked for everywhere."""
        nq = plan.n_query_units
        held = {pid: sum(bool(occ) for occ in per_unit[:nq]) for pid, per_unit in scored.items()}
        counts = sorted((n for n in held.values() if n > 0), reverse=True)
        if not counts:
            return
        cutoff = 1 if self.opt.rank_by_phrase else counts[min(len(counts), window_end) - 1]
        joint = self.score_pages(
            plan, [pid for pid, n in held.items() if n >= cutoff], range(nq, len(plan.units)), cache
        )
        for pid, per_unit in joint.items():
            scored[pid][nq:] = per_unit[nq:]

    def search(
        self, query: str, k: int, offset: int, max_chars: int, filter: SearchFilter | None = None
    ) -> SearchResult:
        """The ``k`` best pages after ``offset``; ``filter``: among the documents it lets through only."""
        # many small matrix products: BLAS threads only contend (15x slower on 2 busy cores)
        with threadpool_limits(limits=1, user_api="blas"):
            return self._search(query, k, offset, max_chars, filter)

    def _search(self, query: str, k: int, offset: int, max_chars: int, filter: SearchFilter | None) -> SearchResult:
        t0 = time.perf_counter()
        plan = self.plan(query, max_chars)
        allowed = self.store.filter_pages(filter) if filter else None  # once a query, before stage 1
        if plan.vectors is None or (allowed is not None and len(allowed) == 0):
            return SearchResult(query, [], (time.perf_counter() - t0) * 1000)
        cand = self._candidates(plan, 2 * (k + offset) + 10, allowed)
        nq = plan.n_query_units
        cache: dict[int, _PageData | None] = {}
        scored = self.score_pages(plan, cand, range(nq), cache)
        if len(plan.units) > nq:
            self._score_joint(plan, scored, offset + k, cache)
        ranked: list[tuple[tuple, float, int, list[Occurrence], str]] = []  # (sort key, score, page, boxes, read)
        for pid, per_unit in scored.items():
            own, joint = per_unit[:nq], [o for occ in per_unit[nq:] for o in occ]
            matched = [occ for occ in own if occ]
            if not matched or not (joint or self._answers(plan, own, cache[pid])):
                continue
            by_phrase = bool(joint) and self.opt.rank_by_phrase
            if by_phrase:
                score, held = max(o.score for o in joint), nq
            else:
                score, held = float(np.mean([occ[0].score if occ else 0.0 for occ in own])), len(matched)
            n_occ = sum(len(occ) for occ in matched)
            # boxes: the whole query where it stands together, then each word's occurrences
            boxes = joint + sorted((o for occ in matched for o in occ), key=lambda o: -o.score)
            if joint:
                boxes = _merge_keep_order(boxes)
            read = joint[0].text if joint else " ".join(occ[0].text for occ in matched)
            # scores equal to the 4 decimals a hit shows rank by their occurrences: a text layer's exact matches
            # read 1 within float rounding, which differs by the token vector quantised (1e-7), not by the page
            key = (-held, -int(bool(joint)), -round(score, 4), -n_occ, pid)
            ranked.append((key, score, pid, boxes, read))
        ranked.sort(key=lambda r: r[0])
        window = ranked[offset : offset + k]
        # a document with several paths is shown at the first one the filter lets through, else its first
        shown = (
            self.store.filter_paths(filter, sorted({cast(_PageData, cache[r[2]]).info.doc_id for r in window}))
            if filter and window
            else {}
        )
        hits = []
        for _, score, pid, occs, read in window:
            info = cast(_PageData, cache[pid]).info  # every scored page was read into the cache
            path, mtime = shown.get(info.doc_id, (info.path, info.mtime_ns))
            hits.append(
                Hit(
                    path,
                    info.page_no,
                    round(score, 4),
                    [[round(v, 5) for v in o.box] for o in occs[: self.opt.max_occurrences]],
                    info.doc_id,
                    pid,
                    info.width,
                    info.height,
                    read,
                    iso_utc(mtime),
                    info.doc_pages,
                    info.kind,
                )
            )
        return SearchResult(query, hits, (time.perf_counter() - t0) * 1000, total=len(ranked))

    def token_maps(self, query: str, page_id: int, max_chars: int) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Per-token absolute-cosine maps (T, H, W) of the query as typed, and the whole-query map (H, W).

        The tokens are the model's query rule on an image page, the text layer's cut on a text-layer page
        (``textcut``; they differ for CJK text), so each map shows where its token is on the page."""
        text = " ".join(u.text for u in parse_query(query, max_chars))
        info = self.store.pages([page_id]).get(page_id)
        q = (
            embed_cut(self.encoder, text)
            if info is not None and info.source == "text"
            else self.encoder.embed_query(text)
        )
        vecs = self.store.project_queries(np.asarray(q.vectors, dtype=np.float32))
        pf = self.store.page_features([page_id])[page_id]
        maps = dense_maps(Frame.whole(pf.grid_h, pf.grid_w), pf.ys, pf.xs, pf.similarities(vecs))
        plan = self.plan(query, max_chars)
        combined: np.ndarray = np.zeros(maps.shape[1:], dtype=np.float32)  # (H, W)
        for per_unit in self.score_pages(plan, [page_id]).get(page_id, []):
            for o in per_unit:
                x0, y0, x1, y1 = o.box
                H, W = combined.shape
                sl = (slice(int(y0 * H), int(round(y1 * H))), slice(int(x0 * W), int(round(x1 * W))))
                combined[sl] = np.maximum(combined[sl], o.score)
        return [t.piece for t in q.tokens], maps, combined

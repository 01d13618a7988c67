"""Issue 17's scale benchmark: the dev queries against an index of many pages, beside the same queries on the
small index of their own set, in one run.

    python3 bench/scale.py --bench ../shared/bench --work /tmp/scale --pages 100000 \
        --distractor-docs DIR [DIR ...] [--sets clean_150 degraded_150] [--source-pages 2500] [--stage1 postings|ivf]

What the big index holds: the dev sets' image-only pages (``--sets``, 137 each), indexed by the engine as a
user would, and distractor pages up to ``--pages``. Born-digital PDFs are not in it: a text layer matches a
word exactly, so any PDF that prints a dev query's word (the dev set's own 12 PDFs, or any other English
document) answers it above the scans, rightly, and R@1 would measure that instead of the index; their bytes a
page are measured on the dev benchmark's 12 PDFs in a home of their own. Distractors are made from real pages,
never from the dev pages: ``--source-pages`` pages of the documents in ``--distractor-docs`` (e.g. Debian
documentation packages, ``scripts/fetch_doc_pdfs.sh``) are rendered at 150 dpi as images and encoded once by
the model, in a separate home. Each distractor takes the lines of one source page (where its text layer puts
them) and fills each line left to right with whole words, their cells as the model read them, drawn at random
from every source page's words (each word's box from the text layer): real words in print, in random order.
Words holding a dev query's word are left out (the same word or, for a query shorter than 4 characters, a part of
a code or date holding it between separators, "999" in "999-2021"; for query words of 4 or more characters any
word containing it; case and ligatures ignored, a word hyphenated at a line's end joined: "Notes", "wondering"
for the near miss "ondering"), and so are the cells of other words within a cell of such a word: a word's box
on the cell grid is its text-layer box rounded outward, which reaches into the next word and the next line, and
until 2026-12-07 those cells carried the left-out word into distractors ("footnotes" under "warranted" answered
"Notes"). So a distractor never holds what a query asks for, and one answered first is a true miss. Cells no
word covers (figures, rules) are left out too: the text layer cannot say what they read. They are written
straight into the big index's store (10 pages a document), which is what indexing
does after the model. Until 0719154 distractors were 4 x 4-cell tiles (~2 characters) shuffled between
pages: they spell words no source holds ("govern" + "ment"), and the word check let ligatures through.

Reported (JSON to ``--out``): per set, R@1 / Loc@1 / FP of its 250 queries on its own index and on the big
one, scored by the harness (``run_eval.score``: a hit is relevant by document and page, so the same page of
the other image set counts as found; a distractor or born-digital page ranked first is a miss), in-process
query latency p50/p95 on the big index, CLI latency (one ``tokensearch search`` process a query), bytes per
page by page kind (everything under the home, split by what each kind stores), the peak RSS of a process
searching the big index, the build time, and the time to add ``--churn`` distractor pages and to remove them
again, beside what encoding that many pages costs (the dev pages' measured seconds a page).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, replace
from itertools import groupby
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CHUNK = 1000  # distractor pages written (and seeded) at once


def render_sources(pdfs: list[Path], out: Path, n_pages: int, dpi: int = 150) -> Path:
    """Up to ``n_pages`` pages of ``pdfs`` as PNG images (a few pages from each document)."""
    import pymupdf

    out.mkdir(parents=True, exist_ok=True)
    done = out / f".rendered-{n_pages}"  # the documents may hold fewer pages: rendering them again would
    if done.exists() or len(list(out.glob("*.png"))) >= n_pages:  # make the source home encode them again
        return out
    per_doc = max(1, -(-n_pages // max(1, len(pdfs))))
    made = 0
    for pdf in pdfs:
        try:
            with pymupdf.open(pdf) as doc:
                for i in range(min(per_doc, doc.page_count)):
                    doc[i].get_pixmap(dpi=dpi).save(out / f"{pdf.stem}__p{i + 1:03d}.png")
                    made += 1
                    if made >= n_pages:
                        return out
        except Exception as e:  # a damaged PDF in the package: skip it
            print(f"skipped {pdf.name}: {e}", file=sys.stderr)
    done.touch()
    return out


@dataclass
class SourceWord:
    """One word of a source page's text layer on the model's cell grid."""

    line: tuple[int, int]  # (block, line) of the text layer
    r0: int
    c0: int
    r1: int  # exclusive
    c1: int
    text: str  # NFKC, lower case, without surrounding punctuation
    banned: bool = False


def page_words(
    pdf: Path, page_no: int, grid_h: int, grid_w: int, qwords: tuple[set[str], set[str]], parts: bool = True
) -> list:
    """The words of a source page (its text layer), each marked ``banned`` where it holds a dev query's word:
    the same word (queries of one word shorter than 4 characters) or, for query words of 4 or more
    characters, any word containing it. NFKC, since a text layer may spell "different" with the ligature
    U+FB00, and a word hyphenated at a line's end is read joined to the next line's first word. ``parts``: a
    short query's word is also found as a part of a code or date (False: the rule before 834fbc0)."""
    import pymupdf

    short, long = qwords
    out: list[SourceWord] = []
    with pymupdf.open(pdf) as doc:
        page = doc[page_no - 1]
        sy, sx = grid_h / page.rect.height, grid_w / page.rect.width
        for x0, y0, x1, y1, text, block, line, _ in page.get_text("words"):
            r0, c0 = max(0, int(y0 * sy)), max(0, int(x0 * sx))
            r1, c1 = min(grid_h, int(np.ceil(y1 * sy))), min(grid_w, int(np.ceil(x1 * sx)))
            if r1 > r0 and c1 > c0:
                out.append(SourceWord((block, line), r0, c0, r1, c1, bare(unicodedata.normalize("NFKC", text))))
    for i, w in enumerate(out):
        joined = w.text
        if w.text.endswith(("-", "\u2010")) and i + 1 < len(out) and out[i + 1].line != w.line:
            joined = w.text.rstrip("-\u2010") + out[i + 1].text
            if holds(joined, short, long, parts):
                out[i + 1].banned = True
        w.banned = w.banned or holds(joined, short, long, parts)
    return out


def holds(word: str, short: set[str], long: set[str], parts: bool = True) -> bool:
    """Does a source word (``bare``) hold a dev query's word: one of ``short`` as the word or as a part of it
    between the separators of codes and dates (the engine answers "999" in "999-2021", "2017" in "18/07/2017"),
    or one of ``long`` anywhere in it."""
    split = _PARTS.split(word) if parts else []
    return word in short or any(part in short for part in split) or any(q in word for q in long)


_PARTS = re.compile(r"[-/\u2010-\u2015\u2212]")


class Distractors:
    """Distractor pages from the source pages' words (see the module's docstring)."""

    def __init__(
        self, sources: list, words: list[list[SourceWord]], leave_out_near: bool = True, provenance: bool = False
    ) -> None:
        """``sources[i]``: a source page's features (model space); ``words[i]``: its text layer's words.
        ``leave_out_near``: a kept word's cells within a cell of a left-out word are left out (False: as before
        834fbc0). ``provenance``: each kept word also records the source words its cells lie within a cell of
        (``self.near``), to tell a distractor's hit on a left-out word's cells from a reading."""
        # per source page with words: (grid_h, grid_w, its lines: (bottom row, first column, end column, word gap))
        self.layouts = []
        self.words = []  # every kept word: (its cells' rows, columns in its box, their features, box height, width)
        self.texts: list[str] = []  # each kept word's text, to tell what a distractor's hit covers
        self.near: list[frozenset[str]] = []  # with ``provenance``: each kept word's neighbours in its source
        # the last page's words: text, bottom row, columns, index into ``self.words``
        self.placed: list[tuple[str, int, int, int, int]] = []
        self.dropped = 0
        for pf, page in zip(sources, words):
            at = np.full((pf.grid_h, pf.grid_w), -1, np.int64)
            at[pf.ys, pf.xs] = np.arange(len(pf.ys))
            lines: dict[tuple[int, int], list[SourceWord]] = {}
            # cells within one of a left-out word's box: the boxes of its neighbours reach into it
            near_banned = np.zeros((pf.grid_h, pf.grid_w), dtype=bool)
            for w in page if leave_out_near else ():
                if w.banned:
                    near_banned[max(0, w.r0 - 1) : w.r1 + 1, max(0, w.c0 - 1) : w.c1 + 1] = True
            boxes = np.array([(w.r0, w.r1, w.c0, w.c1) for w in page]).reshape(-1, 4).T[:, None, :]
            for w in page:
                lines.setdefault(w.line, []).append(w)
                if w.banned:
                    self.dropped += 1
                    continue
                box = at[w.r0 : w.r1, w.c0 : w.c1]
                ry, rx = np.nonzero((box >= 0) & ~near_banned[w.r0 : w.r1, w.c0 : w.c1])
                if len(ry):
                    f = pf.feats[box[ry, rx]].astype(np.float16)  # thousands of pages' cells: float16
                    self.words.append((ry, rx, f, w.r1 - w.r0, w.c1 - w.c0))
                    self.texts.append(w.text)
                    if provenance:
                        self.near.append(_near_words(page, boxes, w, ry + w.r0, rx + w.c0))
            spans = []
            for ws in lines.values():
                ws.sort(key=lambda w: w.c0)
                gaps = [b.c0 - a.c1 for a, b in zip(ws, ws[1:])]
                gap = max(1, int(np.median(gaps))) if gaps else 1
                spans.append((max(w.r1 for w in ws), ws[0].c0, max(w.c1 for w in ws), gap))
            if spans:
                self.layouts.append((pf.grid_h, pf.grid_w, spans))

    def _fill(self, rng: np.random.Generator, spans: list) -> tuple[list, list, list]:
        """Random words along ``spans`` (a page's lines): their cells' rows, columns and features."""
        out_y, out_x, out_f = [], [], []
        for bottom, start, end, gap in spans:
            x = start
            for pick in rng.integers(len(self.words), size=max(1, end - start)).tolist():
                ry, rx, f, h, w = self.words[pick]
                if x + w > end:
                    break
                out_y.append(ry + bottom - h)
                out_x.append(rx + x)
                out_f.append(f)
                self.placed.append((self.texts[pick], bottom, x, x + w, pick))
                x += w + gap
        return out_y, out_x, out_f

    def page(self, rng: np.random.Generator, page_no: int):
        """The lines of a random source page, each filled left to right with random words (bottoms aligned, the
        line's own word gap), a word that would pass the line's end left out."""
        from tokensearch.storage.records import PageRecord

        out_y: list[np.ndarray] = []
        out_x: list[np.ndarray] = []
        out_f: list[np.ndarray] = []
        while not out_y:  # a page of short lines may take no word drawn: another page's lines then
            gh, gw, spans = self.layouts[int(rng.integers(len(self.layouts)))]
            self.placed = []
            out_y, out_x, out_f = self._fill(rng, spans)
        y, x = np.concatenate(out_y), np.concatenate(out_x)
        ok = (y >= 0) & (y < gh) & (x < gw)
        # a tall word on a line right under another may reach into it: one feature a cell, the first placed
        _, first = np.unique(y[ok] * gw + x[ok], return_index=True)
        keep = np.flatnonzero(ok)[first]
        return PageRecord(
            page_no,
            gw * 8,
            gh * 8,
            "vision",
            gh,
            gw,
            y[keep],
            x[keep],
            np.concatenate(out_f)[keep].astype(np.float32),
        )


def _near_words(
    page: list[SourceWord], boxes: np.ndarray, word: SourceWord, ys: np.ndarray, xs: np.ndarray
) -> frozenset[str]:
    """The other words of a source page whose box, grown by a cell, holds one of ``word``'s cells (ys, xs);
    ``boxes``: the page's word boxes, (4, 1, words) rows r0, r1, columns c0, c1, built once a page."""
    r0, r1, c0, c1 = boxes
    y, x = ys[:, None], xs[:, None]
    hit = ((y >= r0 - 1) & (y <= r1) & (x >= c0 - 1) & (x <= c1)).any(axis=0)
    return frozenset(o.text for o, h in zip(page, hit.tolist()) if h and o is not word)


def bare(word: str) -> str:
    """A word as queries and text layers are compared: lower case, without surrounding punctuation."""
    return word.strip("\"'.,;:()[]").lower()


def query_words(queries: list[str]) -> tuple[set[str], set[str]]:
    """The dev queries' words (``bare``): (queries of one word shorter than 4 characters, words of 4 or more).
    A phrase's short words ("of", "the") stay: the phrase needs its long word too, and leaving every "the" out
    would empty the distractors of the commonest pieces, which crowd stage 1."""
    short = {bare(q) for q in queries if len(q.split()) == 1 and len(bare(q)) < 4}
    long = {bare(w) for q in queries for w in q.split() if len(bare(w)) >= 4}
    return short - {""}, long


def make_distractors(
    work: Path,
    pdfs: list[Path],
    n_pages: int,
    queries: list[str],
    before_834fbc0: bool = False,
    provenance: bool = False,
) -> Distractors:
    """The distractor maker of ``work``: its source pages rendered and encoded once (``work/distractor-source``),
    their words read from the PDFs' text layers. The same arguments make the same maker, whose seeded pages
    ``bench/scale_misses.py`` makes again to tell what a distractor's hit covers (``before_834fbc0``: the maker
    of a home built before that commit; ``provenance``: see :class:`Distractors`)."""
    from tokensearch.engine import Engine
    from tokensearch.settings import Settings

    with Engine(Settings(home=work / "distractor-source")) as src:
        src.index(render_sources(pdfs, work / "distractor-source-png", n_pages))
        src_pages = [p for d in src.store.documents(limit=n_pages) for p in src.store.document_pages(d.id)]
        src_feats = src.store.page_features([p.page_id for p in src_pages])
        by_stem = {pdf.stem: pdf for pdf in pdfs}
        qwords = query_words(queries)
        sources, words = [], []
        for p in src_pages:
            pf = src_feats.get(p.page_id)
            if pf is None or len(pf.ys) == 0:  # a blank page has no cells, no layout or words to lend
                continue
            stem, _, no = Path(p.path).stem.rpartition("__p")  # render_sources' names
            # the source home stores its features in index space; the big index is handed them in model space
            sources.append(replace(pf, rows=src.store.lift_features(pf.feats), index=None))
            words.append(page_words(by_stem[stem], int(no), pf.grid_h, pf.grid_w, qwords, not before_834fbc0))
    return Distractors(sources, words, not before_834fbc0, provenance)


def distractor_pages(maker: Distractors, first: int, count: int, seed: int) -> Iterator[tuple[int, Any]]:
    """Distractor pages ``first`` to ``first + count``, each with its document's number (10 pages a document),
    made one at a time (``maker.placed`` is the last one's words). Seeded by ``seed`` and ``first``: the index
    is written in chunks of ``CHUNK``, and one seed for each would repeat the same pages."""
    rng = np.random.default_rng([seed, first])
    for d in range(first // 10, (first + count + 9) // 10):
        for i in range(min(10, first + count - d * 10)):
            yield d, maker.page(rng, i + 1)


def write_distractors(store, maker: Distractors, first: int, count: int, seed: int) -> list[int]:
    """``count`` distractor pages (``distractor_pages``) as documents; returns the documents' ids."""
    ids = []
    for d, made in groupby(distractor_pages(maker, first, count, seed), key=lambda dp: dp[0]):
        pages = [page for _, page in made]
        ids.append(
            store.write_document(f"distractor-{seed}-{d}", f"/distractors/{seed}/{d:07d}.pdf", 1, 1, "pdf", iter(pages))
        )
    return ids


def evaluate(engine, bench: Path, set_name: str, k: int = 10) -> dict:
    """The set's queries on ``engine`` scored by the harness (``run_eval.score``)."""
    import run_eval
    from adapters.common import parse_page_name

    data = bench / "data"
    queries = run_eval.load_jsonl(data / "queries.jsonl")
    gt_pages = {(p["doc"], p["page"]): p["size_pt"] for p in run_eval.load_jsonl(data / "gt.jsonl")}
    transforms = json.loads((data / "transforms.json").read_text()).get(set_name, {})
    results, lat = {}, []
    for q in queries:
        t = time.perf_counter()
        res = engine.search(q["query"], k=k)
        lat.append(time.perf_counter() - t)
        hits = []
        for h in res.hits:
            doc, page = parse_page_name(h.path)
            hits.append({"doc": doc, "page": page or h.page, "score": h.score, "boxes": h.boxes})
        results[q["id"]] = hits
    summary, per_type, _ = run_eval.score(queries, results, lat, gt_pages, transforms, None, k)
    return summary


def search_rss(home: Path, queries: list[str]) -> tuple[float, list[float]]:
    """Peak RSS (MB) of a fresh process that opens the home and runs ``queries``, and its latencies. The peak is
    the process's own (VmHWM): ``ru_maxrss`` keeps the parent's across fork and exec, and this script's process
    holds the whole big index."""
    code = (
        "import json,sys,time\n"
        "from pathlib import Path\n"
        "from tokensearch.engine import Engine\nfrom tokensearch.settings import Settings\n"
        f"e=Engine(Settings(home=Path({str(home)!r})))\n"
        "lat=[]\n"
        f"for q in {queries!r}:\n"
        "    t=time.perf_counter(); e.search(q, k=10); lat.append(time.perf_counter()-t)\n"
        "hwm=[l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
        "print(json.dumps([int(hwm)/1024, lat]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    rss, lat = json.loads(out.stdout.strip().splitlines()[-1])
    return rss, lat


def cli_latency(home: Path, queries: list[str]) -> list[float]:
    exe = [sys.executable, "-m", "tokensearch", "search", "--home", str(home), "--json", "--no-server"]
    out = []
    for q in queries:
        t = time.perf_counter()
        subprocess.run(exe + [q], capture_output=True, check=True, cwd=ROOT)
        out.append(time.perf_counter() - t)
    return out


# SQL tables a home holds once whatever its pages: the codec and the postings' vocabulary (ts_meta), and the
# text layers' token rows (ts_text_rows: at most one row a vocabulary token)
FIXED_TABLES = ("ts_meta", "ts_text_rows", "sqlite_autoindex_ts_text_rows_1")


def fixed_sql_bytes(home: Path) -> int:
    """Bytes of ``FIXED_TABLES`` in the home's SQLite file (SQLite's dbstat; 0 where it is not compiled in)."""
    import sqlite3

    db = home / "index.sqlite3"
    if not db.exists():
        return 0
    with sqlite3.connect(db) as c:
        try:
            marks = ",".join("?" * len(FIXED_TABLES))
            got = c.execute(f"SELECT SUM(pgsize) FROM dbstat WHERE name IN ({marks})", FIXED_TABLES).fetchone()
            return int(got[0] or 0)
        except sqlite3.OperationalError:
            return 0


def bytes_by_kind(store, home: Path) -> dict:
    """Bytes a page of each kind: its feature blobs, its share of the vector snapshot (by vectors), and an
    equal share of everything else under the home (SQL, logs) but what a home holds once whatever its pages
    (``home_fixed_bytes``: the model's query side, ``FIXED_TABLES``), whose share a small home would overstate."""
    from adapters.common import dir_size
    from sqlalchemy import func, select

    from tokensearch.engine import QUERY_SIDE_FILE
    from tokensearch.storage.schema import Page

    with store.engine.connect() as c:
        rows = c.execute(
            select(Page.source, func.count(), func.sum(Page.nbytes), func.sum(Page.n_vectors)).group_by(Page.source)
        ).all()
    total, vec = dir_size(home), dir_size(home / "vectors")
    feat = sum(int(r[2] or 0) for r in rows)
    n_pages = sum(int(r[1]) for r in rows)
    n_vec = max(1, sum(int(r[3] or 0) for r in rows))
    fixed = (home / QUERY_SIDE_FILE).stat().st_size if (home / QUERY_SIDE_FILE).exists() else 0
    fixed += fixed_sql_bytes(home)
    rest = total - vec - feat - fixed  # SQL, logs, and segment bytes no page points to any more
    out = {"total_bytes": total, "pages": n_pages, "home_fixed_bytes": fixed}
    for source, n, nbytes, nv in rows:
        kind = {"vision": "image-only", "text": "born-digital"}.get(source, source)
        blob, vectors = int(nbytes or 0) / int(n), vec * int(nv or 0) / n_vec / int(n)
        out[kind] = int(blob + vectors + rest / max(1, n_pages))
        out[f"{kind}_split"] = {"feature_blob": int(blob), "vectors": int(vectors), "sql_and_rest": int(rest / n_pages)}
    return out


def born_digital_bytes(pdfs: Path, work: Path) -> dict:
    """Bytes a born-digital page: the PDFs in a home of their own whose vector index is token postings from the
    first page, as a home of 10^5 pages holds them, and in a small home's exact flat index."""
    from tokensearch.engine import Engine
    from tokensearch.settings import Settings
    from tokensearch.storage import Store

    out = {}
    for name, extra in (("postings", {"flat_max_vectors": 0, "postings": True}), ("flat", {})):
        settings = Settings(home=work / f"born-digital-{name}")

        opts = {**settings.store_options(), **extra}
        with Engine(settings, store=Store.open(settings.home, settings.database_url, **opts)) as eng:
            eng.index(pdfs)
            eng.store.vectors.current()  # built now, saved when the store closes: then it is counted
        with Engine(settings, store=Store.open(settings.home, settings.database_url, **opts)) as eng:
            out[name] = bytes_by_kind(eng.store, work / f"born-digital-{name}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", type=Path, default=ROOT.parent / "shared" / "bench")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--pages", type=int, default=100_000, help="pages of the big index, distractors included")
    ap.add_argument("--sets", nargs="+", default=["clean_150", "degraded_150"])
    ap.add_argument(
        "--distractor-docs", type=Path, nargs="+", required=True, help="folders of PDFs the distractors are made from"
    )
    ap.add_argument("--source-pages", type=int, default=2500)
    ap.add_argument("--churn", type=int, default=1000, help="pages added to and removed from the big index")
    ap.add_argument("--cli-queries", type=int, default=10)
    ap.add_argument(
        "--fixed-cells",
        action="store_true",
        help="also run the first set's queries on the big index with stage 1's cells a token fixed at "
        "SearchOptions.cells_per_token (as before they grew with the index)",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "scale.json")
    ap.add_argument(
        "--rss-only",
        action="store_true",
        help="measure the search RSS of an existing --work's big index again and update it in --out",
    )
    ap.add_argument(
        "--requery",
        action="store_true",
        help="run the sets' queries again on an existing --work's big index (a search change) and update --out",
    )
    ap.add_argument(
        "--sq4-min-vectors",
        type=int,
        help="the store's sq4_min_vectors: IVF indexes past this many vectors take 4-bit codes (default 0)",
    )
    ap.add_argument(
        "--stage1",
        choices=("postings", "ivf"),
        default="postings",
        help="past the flat index: token postings (the default) or an IVF index (the store's postings option)",
    )
    a = ap.parse_args()
    bench, work = a.bench.resolve(), a.work.resolve()
    sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(bench)]  # the package, bench/ and the harness
    from cli_latency import cpu_name

    from tokensearch.engine import Engine
    from tokensearch.search.searcher import Searcher
    from tokensearch.settings import Settings

    # every store this run opens (Settings names the vector backend only)
    extra: dict = {"postings": a.stage1 == "postings"}
    if a.sq4_min_vectors is not None:
        extra["sq4_min_vectors"] = a.sq4_min_vectors
    store_options = Settings.store_options
    Settings.store_options = lambda self: {**store_options(self), **extra}  # type: ignore[method-assign]

    if a.rss_only:
        report = json.loads(a.out.read_text())
        queries = [json.loads(line)["query"] for line in open(bench / "data" / "queries.jsonl")]
        report["search_rss_mb"] = round(search_rss(work / "big", queries[:40])[0], 1)
        a.out.write_text(json.dumps(report, indent=1))
        print("search RSS MB", report["search_rss_mb"])
        return
    if a.requery:
        report = json.loads(a.out.read_text())
        with Engine(Settings(home=work / "big")) as big:
            for s in a.sets:
                report["sets"][s]["big"] = evaluate(big, bench, s)
                print(s, "big index:", report["sets"][s]["big"], flush=True)
        report["requeried_at"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip()
        a.out.write_text(json.dumps(report, indent=1))
        return
    scans = bench / "data" / "scans"
    report: dict = {
        "pages_target": a.pages,
        "sets": {},
        "cpu": cpu_name(),
        "sq4_min_vectors": a.sq4_min_vectors,
        "stage1": a.stage1,
    }
    queries = [json.loads(line)["query"] for line in open(bench / "data" / "queries.jsonl")]

    def save() -> None:
        """The report as far as it got: a 100,000-page run takes hours, and a session may end inside it."""
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(report, indent=1))

    # 1. each set on its own (the dev benchmark's index), timing the model's encoding
    encode_s = []
    for s in a.sets:
        eng = Engine(Settings(home=work / f"own-{s}"))
        t = time.perf_counter()
        rep = eng.index(scans / s / "png")
        if rep.pages:
            encode_s.append((time.perf_counter() - t) / rep.pages)
        report["sets"][s] = {"own": evaluate(eng, bench, s)}
        eng.close()
        print(s, "own index:", report["sets"][s]["own"], flush=True)

    # born-digital pages: the dev benchmark's PDFs in homes of their own (bytes a page)
    born = born_digital_bytes(bench / "corpus" / "pdf", work)

    # 2. the big index: the dev sets, then distractors
    t_build = time.perf_counter()
    big = Engine(Settings(home=work / "big"))
    for s in a.sets:
        big.index(scans / s / "png")
    pdfs = sorted(p for d in a.distractor_docs for p in d.glob("*.pdf"))
    maker = make_distractors(work, pdfs, a.source_pages, queries)
    report["distractor_words"] = {"kept": len(maker.words), "left_out_query_words": maker.dropped}
    print(f"distractor words: {len(maker.words)} kept, {maker.dropped} left out (a query's word)", flush=True)
    have = big.store.stats().pages
    n_distract = max(0, a.pages - have)
    t0 = time.perf_counter()
    for first in range(0, n_distract, CHUNK):
        write_distractors(big.store, maker, first, min(CHUNK, n_distract - first), seed=1)
        print(
            f"distractors: {min(first + CHUNK, n_distract)} of {n_distract} ({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
    big.store.vectors.current()  # the vector index built and saved as a search would
    big.store.persist()
    report["build_s"] = round(time.perf_counter() - t_build, 1)
    report["distractor_write_s_per_page"] = round((time.perf_counter() - t0) / max(1, n_distract), 4)
    report["index"] = big.store.stats().vector_index_type
    report["bytes_per_page"] = bytes_by_kind(big.store, work / "big")
    report["bytes_per_page"]["born-digital"] = born["postings"].get("born-digital")
    report["bytes_per_page"]["born-digital-flat"] = born["flat"].get("born-digital")
    report["born_digital_homes"] = born
    save()

    # 3. the dev queries inside the big index
    for s in a.sets:
        report["sets"][s]["big"] = evaluate(big, bench, s)
        print(s, "big index:", report["sets"][s]["big"], flush=True)
        save()
    if a.fixed_cells:
        make = big.searcher

        def fixed() -> Searcher:
            searcher = make()
            searcher.opt = replace(searcher.opt, crowd_pages=sys.maxsize)
            return searcher

        big.searcher = fixed  # type: ignore[method-assign]
        report["sets"][a.sets[0]]["big_fixed_cells"] = evaluate(big, bench, a.sets[0])
        big.searcher = make  # type: ignore[method-assign]
        print(a.sets[0], "big index, cells fixed:", report["sets"][a.sets[0]]["big_fixed_cells"], flush=True)
    big.close()
    rss, lat = search_rss(work / "big", queries[:40])
    report["search_rss_mb"] = round(rss, 1)
    report["fresh_process_p50_ms"] = round(1000 * float(np.median(lat[1:])), 1)
    cli = cli_latency(work / "big", queries[: a.cli_queries])
    report["cli_median_s"] = round(float(np.median(cli)), 3)
    save()

    # 4. churn: add and remove pages
    big = Engine(Settings(home=work / "big"))
    t = time.perf_counter()
    ids = write_distractors(big.store, maker, 0, a.churn, seed=2)
    big.store.vectors.current()
    big.store.persist()
    add_s = time.perf_counter() - t
    t = time.perf_counter()
    for d in ids:
        big.store.delete_document(d)
    big.store.vectors.current()
    big.store.persist()
    report["churn"] = {
        "pages": a.churn,
        "add_s": round(add_s, 1),
        "remove_s": round(time.perf_counter() - t, 1),
        "their_encoding_s": round(a.churn * float(np.mean(encode_s)), 1) if encode_s else None,
    }
    big.close()
    save()
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

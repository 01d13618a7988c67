"""What the dev queries find instead of their page in ``bench/scale.py``'s big index: the words under a
distractor's hit.

    python3 bench/scale_misses.py --work W --distractor-docs DIR [DIR ...] [--source-pages 2500] [--bench B] \
        [--maker-before-834fbc0]

W: a finished ``bench/scale.py --work W`` run with the same ``--distractor-docs`` and ``--source-pages``. Its
distractor pages are made again from their seeds (``scale.make_distractors``: the same maker, the same pages),
so the words placed where a distractor page answered are known. For every query answered first by a
distractor (a positive query's miss, or a negative answered at all) it prints the words the hit's first box
covers, and counts the hits whose words hold the query's word (a word the ban let through), those whose words'
cells lie within a cell of a left-out word holding it in their source page (the maker before 834fbc0 kept such
cells: "footnotes" under "warranted" answered "Notes"), and those where the engine read other words as the query
("support sed" as "supported", "varius" as the near miss "variuus"). ``--maker-before-834fbc0``: W was built
before that commit (its maker kept those cells, and banned a short query's word only as a whole word).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--distractor-docs", type=Path, nargs="+", required=True)
    ap.add_argument("--source-pages", type=int, default=2500)
    ap.add_argument("--bench", type=Path, default=ROOT.parent / "shared" / "bench")
    ap.add_argument("--maker-before-834fbc0", action="store_true", help="W was built by the maker before 834fbc0")
    a = ap.parse_args()
    sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(a.bench)]
    import scale
    from stage1_scale import dev_pages

    from tokensearch.engine import Engine
    from tokensearch.settings import Settings

    queries = [json.loads(line) for line in open(a.bench / "data" / "queries.jsonl")]
    pdfs = sorted(p for d in a.distractor_docs for p in d.glob("*.pdf"))
    maker = scale.make_distractors(
        a.work, pdfs, a.source_pages, [q["query"] for q in queries], a.maker_before_834fbc0, provenance=True
    )
    made: dict[tuple[int, int], list] = {}  # (seed, first page) -> the words placed on each of its pages

    with Engine(Settings(home=a.work / "big")) as eng:
        _, where = dev_pages(eng.store)
        n_distract = eng.store.stats().pages - len(where)

        def placed(seed: int, index: int) -> list:
            first = index // scale.CHUNK * scale.CHUNK
            if (seed, first) not in made:
                count = min(scale.CHUNK, n_distract - first)
                made[(seed, first)] = [list(maker.placed) for _ in scale.distractor_pages(maker, first, count, seed)]
            return made[(seed, first)][index - first]

        kinds: Counter = Counter()
        for q in queries:
            want = {(r["doc"], r["page"]) for r in q.get("relevant") or []}
            hits = eng.search(q["query"], k=10).hits
            if not hits or hits[0].page_id in where:
                continue
            hit = hits[0]
            m = re.search(r"/distractors/(\d+)/(\d+)\.pdf", hit.path)
            if m is None:
                continue
            pf = eng.store.page_features([hit.page_id])[hit.page_id]
            x0, y0, x1, y1 = hit.boxes[0]
            r0, r1, c0, c1 = y0 * pf.grid_h, y1 * pf.grid_h, x0 * pf.grid_w, x1 * pf.grid_w
            # a word's bottom row within the box (a few rows below it: descenders), its columns overlapping
            under = [
                (t, pick)
                for t, bottom, a0, a1, pick in placed(int(m.group(1)), int(m.group(2)) * 10 + hit.page - 1)
                if r0 - 1 <= bottom <= r1 + 4 and a1 > c0 and a0 < c1
            ]
            words = [t for t, _ in under]
            # a phrase's words of 4 or more characters (its short ones are everywhere), or the one word
            need = [w for w in map(scale.bare, q["query"].split()) if len(w) >= 4] or [scale.bare(q["query"])]
            holds = all(any(w in t for t in words) for w in need)
            # the query's word among the source words next to the cells placed there (the ban's own rule)
            mine = ({w for w in need if len(w) < 4}, {w for w in need if len(w) >= 4})
            beside = sorted({n for _, pick in under for n in maker.near[pick] if scale.holds(n, *mine)})
            kind = ("positive" if want else "negative") + (
                ": the words hold it" if holds else ": beside a left-out word" if beside else ": read as it"
            )
            kinds[kind] += 1
            print(f"{kind:32} {q['query']!r:22} {q.get('type', ''):9} {hit.score:.3f} {words} {beside}", flush=True)
        for kind, n in sorted(kinds.items()):
            print(f"{kind}: {n}")


if __name__ == "__main__":
    main()

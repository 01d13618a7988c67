"""Quality of the mini model against its score threshold, on the dev benchmark's image-only scans.

Indexes a set once (kept in --home, reused on later runs), searches every query with the threshold
lowered to --floor, then replays the harness's scoring (../shared/bench/run_eval.py ``score``) with the
hits below each threshold removed: one line per threshold with R@1, Loc@1 and FP on negatives. A
development tool to pick a threshold and to compare models/scorers on the same pages.

    python3 bench/threshold_sweep.py --set clean_150 --pages subset60 --model mini --home /tmp/sweep_c150
    python3 bench/threshold_sweep.py --set real_dev --pages all --home /tmp/sweep_real   # receipts (evaluate only)
    python3 bench/threshold_sweep.py --set real_dev --pages all --home H --floor 0.7233 --thresholds 0.7233 \
        --verify-weights 4 --word-start-penalties 0,0.05 --per-type   # the word-start check on and off

A replay removes hits below each threshold after the search, so for queries of several words (a page holding
some of them scores their mean) it is stricter than a search at that threshold.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", type=Path, default=ROOT.parent / "shared" / "bench")
    ap.add_argument("--set", default="clean_150")
    ap.add_argument("--pages", default="subset60", help="all | subset60")
    ap.add_argument("--model", default="mini")
    ap.add_argument("--home", type=Path, required=True, help="index directory (reused when present)")
    ap.add_argument("--floor", type=float, default=0.3, help="search threshold for the replay (lowest shown)")
    ap.add_argument("--thresholds", default="", help="comma-separated; default: floor..0.95 step 0.025")
    ap.add_argument("--json", type=Path, default=None, help="write the curve here")
    ap.add_argument(
        "--verify-weights",
        default="0",
        help="comma-separated weights of the vocabulary margin (search.verify) to replay, each a curve",
    )
    ap.add_argument(
        "--word-end-penalties",
        default="0.05",
        help="comma-separated penalties of the word-end check "
        "(search.verify.word_continues; with verification only) to replay, each a curve",
    )
    ap.add_argument(
        "--word-start-penalties",
        default="0.05",
        help="comma-separated penalties of the word-start "
        "check (word_continues left of a number's match; with verification only), each a curve",
    )
    ap.add_argument("--per-type", action="store_true", help="also print R@1 / Loc@1 / FP per query type")
    a = ap.parse_args()

    bench = a.bench.resolve()
    sys.path[:0] = [str(ROOT), str(bench)]
    import run_eval
    from adapters.tokensearch_cli import TokenSearchCLI

    from tokensearch.engine import Engine
    from tokensearch.settings import Settings

    data = Path(run_eval.EXTERNAL_SETS.get(a.set, bench / "data"))  # real_dev keeps its own gt/queries
    queries = run_eval.load_jsonl(data / "queries.jsonl")
    tf_file = data / "transforms.json"
    transforms = json.loads(tf_file.read_text()).get(a.set, {}) if tf_file.exists() else {}
    subset = None if a.pages == "all" else set(json.loads((data / f"{a.pages}.json").read_text()))
    gt_pages = {
        (p["doc"], p["page"]): p["size_pt"]
        for p in run_eval.load_jsonl(data / "gt.jsonl")
        if subset is None or f"{p['doc']}/{p['page']}" in subset
    }

    engine = Engine(Settings(home=a.home, model=a.model, threshold=a.floor))
    if engine.store.stats().pages == 0:
        folder, tmp = run_eval.prepare_input(a.set, "png", subset, str(data))  # tmp: a folder of links for a subset
        try:
            engine.index(Path(folder))
            engine.store.persist()
        finally:
            if tmp:
                shutil.rmtree(tmp, ignore_errors=True)
    conv = TokenSearchCLI._convert
    thresholds = (
        [float(t) for t in a.thresholds.split(",")]
        if a.thresholds
        else [round(a.floor + 0.025 * i, 3) for i in range(int((0.95 - a.floor) / 0.025) + 1)]
    )
    curve = []
    for w, pen, start in itertools.product(
        *(
            [float(v) for v in arg.split(",")]
            for arg in (a.verify_weights, a.word_end_penalties, a.word_start_penalties)
        )
    ):
        engine.settings = engine.settings.model_copy(update={"verify_weight": w})
        searcher = engine.searcher()
        searcher.opt = replace(searcher.opt, word_end_penalty=pen, word_start_penalty=start)
        results = {}
        for q in queries:
            res = searcher.search(q["query"], 10, 0, engine.settings.max_query_chars)
            hits = [conv(None, {"path": h.path, "page": h.page, "score": h.score, "boxes": h.boxes}) for h in res.hits]
            results[q["id"]] = [h for h in hits if h is not None]
        print(f"verify weight {w}, word-end penalty {pen}, word-start penalty {start}")
        print(f"{'thr':>6} {'R@1':>6} {'R@10':>6} {'Loc@1':>6} {'FP':>6}")
        for t in thresholds:
            kept = {qid: [h for h in hits if h["score"] >= t] for qid, hits in results.items()}
            summary, per_type, _ = run_eval.score(queries, kept, [], gt_pages, transforms, None, 10)
            curve.append(
                {
                    "verify_weight": w,
                    "word_end_penalty": pen,
                    "word_start_penalty": start,
                    "threshold": t,
                    **{k: summary[k] for k in ("R@1", "R@10", "Loc@1", "FP_any")},
                }
            )
            print(
                f"{t:6.3f} {summary['R@1']:6.3f} {summary['R@10']:6.3f} {summary['Loc@1']:6.3f} "
                f"{summary['FP_any']:6.3f}",
                flush=True,
            )
            if a.per_type:
                for name, v in sorted(per_type.items()):
                    print(
                        f"{'':6} {name:10} n={v['n']:<3} "
                        + " ".join(f"{m} {v[m]:.3f}" for m in ("r1", "loc1", "fp_any") if m in v)
                    )
    if a.json:
        a.json.write_text(json.dumps({"set": a.set, "pages": a.pages, "model": a.model, "curve": curve}, indent=1))


if __name__ == "__main__":
    main()

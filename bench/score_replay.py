"""Rank pages from a ``bench/score_features.py`` dump under other occurrence scores, and score them.

Each rule maps an occurrence's features to a score; a page's unit is present where its best
occurrence reaches the threshold, and pages rank as ``Searcher.search`` ranks them (units present,
the query's words standing together, the mean of the units' best scores). For each rule the harness's
R@1 / Loc@1 / FP (``run_eval.score``) over a threshold grid, and at the lowest threshold where the
tuning sets (clean_150, degraded_150) answer at most ``--max-fp`` of their negatives.

    python3 bench/score_replay.py --bench ../shared/bench --dumps /tmp/feat_clean_150.pkl /tmp/feat_degraded_150.pkl
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TUNE = ("clean_150", "degraded_150")

Rule = Callable[[dict], float]


def _margin(o: dict) -> np.ndarray:
    return o["own"] - o["other"]


def current(o: dict, w: float = 4.0, pen: float = 0.05) -> float:
    """The shipped score: chain mean + w * mean margin capped at 0, word-end/-start penalties."""
    return o["chain"] + w * float(np.minimum(_margin(o), 0).mean()) - pen * (o["end"] + o["start"])


def _capped(o: dict) -> float:
    return float(np.minimum(_margin(o), 0).mean())


def _shared(o: dict, share: float) -> float:
    read = (1.0 - share) * o["chain"] + share * float(o["own"].mean())
    return read + 4.0 * _capped(o) - 0.05 * (o["end"] + o["start"])


RULES: dict[str, Rule] = {
    "current": current,
    "w6": lambda o: current(o, 6.0),
    # the worst token's margin as well as the mean: a near miss differs in one token
    "mix_min": lambda o: (
        o["chain"] + 2.0 * _capped(o) + float(np.minimum(_margin(o), 0).min()) - 0.05 * (o["end"] + o["start"])
    ),
    # positive margins count too: a token read clearly as itself, whatever its cosine
    "uncapped": lambda o: current(o) + float(np.clip(_margin(o), -1, 0.1).mean()),
    # a share of the score from the tokens' pooled cells, the rest from the chain's (``pooled_share``);
    # replayed with --floor-below: located at the threshold, a chain the pooled cells would lift is lost
    "pooled": lambda o: _shared(o, 1.0),
    "share30": lambda o: _shared(o, 0.3),
    "half": lambda o: _shared(o, 0.5),
    "share70": lambda o: _shared(o, 0.7),
}


def rank_query(rec: dict, rule: Rule, thr: float, chain_floor: float) -> list[dict]:
    nq = rec["nq"]
    ranked = []
    for p in rec["pages"]:
        per_unit: list[list[tuple[float, dict]]] = [[] for _ in rec["units"]]
        for o in p["occ"]:
            if o["chain"] < chain_floor:
                continue
            s = rule(o)
            if s >= thr:
                per_unit[o["unit"]].append((s, o))
        own = per_unit[:nq]
        joint = sorted((x for u in per_unit[nq:] for x in u), key=lambda x: -x[0])
        matched = [u for u in own if u]
        if not matched:
            continue
        score = float(np.mean([max(s for s, _ in u) if u else 0.0 for u in own]))
        n_occ = sum(len(u) for u in matched)
        occs = sorted((x for u in matched for x in u), key=lambda x: -x[0])
        boxes = [o["box"] for _, o in joint] + [o["box"] for _, o in occs]
        ranked.append(
            (
                (-len(matched), -int(bool(joint)), -score, -n_occ, p["page_id"]),
                {"path": p["path"], "page": p["page"], "score": score, "boxes": boxes[:20]},
            )
        )
    ranked.sort(key=lambda r: r[0])
    return [h for _, h in ranked[:10]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", type=Path, default=ROOT.parent / "shared" / "bench")
    ap.add_argument("--dumps", type=Path, nargs="+", required=True)
    ap.add_argument("--rules", default=",".join(RULES))
    ap.add_argument("--thresholds", default="")
    ap.add_argument(
        "--chain-floor",
        type=float,
        default=None,
        help="occurrences need this chain mean (default: the threshold, as the searcher's locate does)",
    )
    ap.add_argument(
        "--floor-below",
        type=float,
        default=None,
        help="occurrences need a chain mean this far under the threshold (instead of --chain-floor)",
    )
    ap.add_argument("--max-fp", type=float, default=1 / 30)
    ap.add_argument("--per-type", action="store_true")
    a = ap.parse_args()
    bench = a.bench.resolve()
    sys.path[:0] = [str(ROOT), str(bench)]
    import run_eval
    from adapters.tokensearch_cli import TokenSearchCLI

    sets = {}
    for f in a.dumps:
        d = pickle.loads(f.read_bytes())
        data = Path(run_eval.EXTERNAL_SETS.get(d["set"], bench / "data"))
        queries = run_eval.load_jsonl(data / "queries.jsonl")
        tf_file = data / "transforms.json"
        transforms = json.loads(tf_file.read_text()).get(d["set"], {}) if tf_file.exists() else {}
        gt_pages = {(p["doc"], p["page"]): p["size_pt"] for p in run_eval.load_jsonl(data / "gt.jsonl")}
        sets[d["set"]] = (d, queries, transforms, gt_pages)
    thresholds = (
        [float(t) for t in a.thresholds.split(",")] if a.thresholds else [round(0.5 + 0.01 * i, 3) for i in range(41)]
    )
    conv = TokenSearchCLI._convert
    for name in a.rules.split(","):
        rule = RULES[name]
        rows = []
        for t in thresholds:
            row = {"thr": t}
            for sname, (d, queries, transforms, gt_pages) in sets.items():
                floor = t if a.chain_floor is None else a.chain_floor
                if a.floor_below is not None:
                    floor = t - a.floor_below
                results = {
                    rec["id"]: [h for h in (conv(None, x) for x in rank_query(rec, rule, t, floor)) if h is not None]
                    for rec in d["queries"]
                }
                summary, per_type, _ = run_eval.score(queries, results, [], gt_pages, transforms, None, 10)
                row[sname] = (summary["R@1"], summary["Loc@1"], summary["FP_any"], per_type)
            rows.append(row)
        tune = [s for s in TUNE if s in sets]
        ok = [r for r in rows if all(r[s][2] <= a.max_fp + 1e-9 for s in tune)]
        best = min(ok, key=lambda r: r["thr"]) if ok else None
        print(f"== {name}")
        for r in rows:
            mark = " <=" if r is best else ""
            print(
                f"{r['thr']:.3f} "
                + "  ".join(f"{s} {v[0]:.3f}/{v[1]:.3f}/{v[2]:.3f}" for s, v in r.items() if s != "thr")
                + mark
            )
        if best and a.per_type:
            for s, v in best.items():
                if s != "thr":
                    print(
                        f"   {s}: "
                        + " ".join(f"{k} {x.get('r1', x.get('fp_any', 0)):.3f}" for k, x in sorted(v[3].items()))
                    )


if __name__ == "__main__":
    main()

"""How far under the threshold stage 2 locates chains (``SearchOptions.pooled_reach``): what each reach finds and
what it costs, on one indexed dev set, all its queries.

    python3 bench/reach_sweep.py --home H --queries B/data/queries.jsonl --reaches 0.05 0.1 --out F.json
    python3 bench/reach_sweep.py --home H --queries Q --option word_break_penalty --values 0 1 --out F.json
    python3 bench/reach_sweep.py --home H --queries Q --settings rank_by_phrase=0 rank_by_phrase=1 --out F.json

H: the set indexed (``tokensearch index .../scans/clean_150/png --home H``). For each reach, every query is
searched as a user would (k = 10, one BLAS thread, as the engine searches): R@1 of the positives (the first
hit on a relevant page, either rendition), the negatives answered (a hit at all), the CPU seconds a search
(median, mean, p95), the queries missed or answered, and each query's first three pages, so two runs can be
compared (``--against``: how many queries' first pages differ, reach by reach). With ``--interleave`` each query
runs under every value in turn (the first rotating), so the CPU figures, also given as medians by query type, see
the same noise. For two commits, run it from each checkout (``PYTHONPATH`` = that checkout) on the same home, side
by side on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _typed(options: object, name: str, value: str) -> float | int:
    """A --settings value as its field holds it: a count stays an int (it slices lists)."""
    return int(float(value)) if type(getattr(options, name)) is int else float(value)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--queries", type=Path, required=True, help="the set's queries.jsonl")
    ap.add_argument("--bench", type=Path, default=ROOT.parent / "shared" / "bench")
    ap.add_argument("--reaches", "--values", dest="reaches", type=float, nargs="+", default=[0.05, 0.1])
    ap.add_argument(
        "--option",
        default="pooled_reach",
        help="the SearchOptions field the values are given to (e.g. word_break_penalty; 0 turns a check off)",
    )
    ap.add_argument(
        "--settings",
        nargs="+",
        help="instead of --option/--values: each a comma-separated list of NAME=VALUE SearchOptions fields",
    )
    ap.add_argument(
        "--interleave", action="store_true", help="each query under every variant in turn (CPU compared fairly)"
    )
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--against", type=Path, help="an earlier --out: queries whose first pages differ")
    a = ap.parse_args()
    sys.path[:0] = [str(ROOT / "bench"), str(a.bench)]
    from stage1_scale import dev_pages

    from tokensearch.engine import Engine
    from tokensearch.settings import Settings

    eng = Engine(Settings(home=a.home))
    searcher = eng.searcher()
    shipped = searcher.opt
    _, where = dev_pages(searcher.store)
    records = [json.loads(line) for line in a.queries.open()]
    searcher.search(records[0]["query"], 10, 0, 256)  # warm: the decoded index, the model's tables
    report: dict = {"home": str(a.home), "queries": str(a.queries), "reaches": {}}
    variants: list[tuple[str, dict]] = (
        [(v, {k: _typed(shipped, k, x) for k, x in (kv.split("=") for kv in v.split(","))}) for v in a.settings]
        if a.settings
        else [(str(r), {a.option: r}) for r in a.reaches]
    )
    acc = {name: {"answered": 0, "cpu_by_type": {}, "missed": [], "first": {}, "by_type": {}} for name, _ in variants}

    def run(name: str, fields: dict, q: dict) -> None:
        r = acc[name]
        searcher.opt = replace(shipped, **fields)
        t = time.process_time()
        hits = searcher.search(q["query"], 10, 0, 256).hits
        r["cpu_by_type"].setdefault(q["type"], []).append(time.process_time() - t)
        r["first"][q["id"]] = [h.page_id for h in hits[:3]]
        want = {(x["doc"], x["page"]) for x in q.get("relevant") or []}
        if want:
            ok = bool(hits) and where.get(hits[0].page_id) in want
            r["by_type"].setdefault(q["type"], []).append(int(ok))
            if not ok:
                r["missed"].append(q["query"])
        elif hits:
            r["answered"] += 1
            r["missed"].append(f"negative {q['query']!r} {hits[0].score}")

    if a.interleave:  # each query under every variant in turn, the first variant rotating: the same noise for all
        for i, q in enumerate(records):
            for name, fields in variants[i % len(variants) :] + variants[: i % len(variants)]:
                run(name, fields, q)
    else:
        for name, fields in variants:
            for q in records:
                run(name, fields, q)
    n_pos = sum(1 for q in records if q.get("relevant"))
    for reach, _ in variants:
        r = acc[reach]
        cpu = sorted(c for v in r["cpu_by_type"].values() for c in v)
        row = {
            "r1_positives": round(sum(sum(v) for v in r["by_type"].values()) / n_pos, 4),
            "negatives_answered": r["answered"],
            "r1_by_type": {t: round(sum(v) / len(v), 4) for t, v in sorted(r["by_type"].items())},
            "cpu_ms_median": round(1000 * statistics.median(cpu)),
            "cpu_ms_mean": round(1000 * statistics.mean(cpu)),
            "cpu_ms_p95": round(1000 * cpu[int(0.95 * len(cpu))]),
            "cpu_ms_median_by_type": {
                t: round(1000 * statistics.median(v)) for t, v in sorted(r["cpu_by_type"].items())
            },
        }
        print(f"{a.option if not a.settings else 'settings'} {reach}: {row}", flush=True)
        report["reaches"][str(reach)] = {**row, "missed": r["missed"], "first_pages": r["first"]}
    if a.against:
        before = json.loads(a.against.read_text())["reaches"]
        for reach, now in report["reaches"].items():
            if reach in before:
                old = before[reach]["first_pages"]
                differ = [q for q, pages in now["first_pages"].items() if old.get(q) != pages]
                print(f"reach {reach}: {len(differ)} queries' first pages differ from {a.against} {differ[:10]}")
    a.out.write_text(json.dumps(report, indent=1))
    eng.close()


if __name__ == "__main__":
    main()

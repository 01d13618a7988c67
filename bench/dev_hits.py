"""The dev queries' hits on an index, in one thread as a server's search worker runs them, and whether a
change to the search kept them: a speed-up that claims the same results is checked here.

    python3 bench/dev_hits.py --home H --out hits.json [--against before.json] [--data ../shared/bench/data] [--stages]

Writes every query's hits (path, page, score to 4 decimals, boxes) and the CPU seconds a search (median,
mean, p95); with ``--against``, prints how many queries' hits differ from that file's. For two commits,
run it from each checkout (``PYTHONPATH`` = that checkout) on the same home. The process is set up as
``api/searches.py`` sets up a search worker (one thread, the flat index kept decoded, freed memory reused).
Also the CPU a search by query type, and with ``--stages`` where it goes: a second pass over the queries under
cProfile, each stage's share of the profiled time (cProfile slows small calls more than large ones, so the
shares are approximate; the timed pass is the first, unprofiled one).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--against", type=Path)
    ap.add_argument(
        "--system-allocator", action="store_true", help="leave glibc's allocator as it is (tokensearch.allocator)"
    )
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "bench" / "data")
    ap.add_argument("--stages", action="store_true", help="then profile the queries: each stage's share of the CPU")
    a = ap.parse_args()

    from threadpoolctl import threadpool_limits

    from tokensearch.allocator import reuse_freed_memory
    from tokensearch.engine import Engine
    from tokensearch.settings import Settings
    from tokensearch.storage.vectors import keep_flat_decoded

    records = [json.loads(line) for line in (a.data / "queries.jsonl").open()]
    queries = [r["query"] for r in records]
    eng = Engine(Settings(home=a.home, threads=1))
    threadpool_limits(1)
    keep_flat_decoded()  # as the API's search workers
    if not a.system_allocator:
        reuse_freed_memory()
    for q in queries[:5]:  # warm: the decoded index, the model's tables
        eng.search(q, k=10)
    hits, cpu = {}, []
    for q in queries:
        t = time.process_time()
        found = eng.search(q, k=10).hits
        cpu.append(time.process_time() - t)
        hits[q] = [[h.path, h.page, round(h.score, 4), h.boxes] for h in found]
    med, mean = statistics.median(cpu), statistics.fmean(cpu)
    p95 = sorted(cpu)[int(0.95 * (len(cpu) - 1))]
    a.out.write_text(json.dumps({"cpu_s_median": med, "cpu_s_mean": mean, "cpu_s_p95": p95, "hits": hits}))
    ms = [round(x * 1000) for x in (med, mean, p95)]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{len(queries)} queries, CPU a search: median {ms[0]} ms, mean {ms[1]}, p95 {ms[2]}; peak RSS {rss:.0f} MB")
    by_type: dict[str, list[float]] = {}
    for r, c in zip(records, cpu):
        by_type.setdefault(r.get("type", "?"), []).append(c)
    print(
        "by query type, median / mean ms (share of all CPU): "
        + "; ".join(
            f"{t} ({len(v)}) {statistics.median(v) * 1000:.0f} / {statistics.fmean(v) * 1000:.0f} "
            f"({sum(v) / sum(cpu):.0%})"
            for t, v in sorted(by_type.items())
        )
    )
    if a.stages:
        print_stages(eng, queries)
    if a.against:
        before = json.loads(a.against.read_text())["hits"]
        differ = [q for q in queries if before.get(q) != hits[q]]
        print(f"hits differ from {a.against} on {len(differ)} of {len(queries)} queries: {differ[:5]}")


# (label, file, function) of the search path: cumulative time of each, as a share of all searches' time. The rows
# overlap where one stage calls another (the features' reading includes their decoding).
STAGES = [
    ("stage 1: top cells of every query token (exact scan)", "vectors.py", "scan_top_k"),
    ("stage 1: chains of retrieved cells (candidate pages)", "localize.py", "chain_estimate"),
    ("stage 2: reading the candidate pages' features", "store.py", "page_features"),
    ("  of which decoding them", "features.py", "decode_page"),
    ("stage 2: cosine of every cell with every query row", "records.py", "similarities"),
    ("stage 2: token maps", "localize.py", "dense_maps"),
    ("stage 2: chaining the tokens (occurrences)", "localize.py", "locate"),
    ("stage 2: vocabulary check", "verify.py", "rescore_all"),
    ("stage 2: word-boundary checks", "searcher.py", "_word_bounds"),
    ("stage 2: all (words, then the query as one phrase)", "searcher.py", "score_pages"),
]


def print_stages(eng, queries: list[str]) -> None:
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    for q in queries:
        eng.search(q, k=10)
    prof.disable()
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    cum: dict[tuple[str, str], float] = {}
    total = 0.0
    for (file, _, name), (_, _, _, ct, _) in stats.items():
        cum[(Path(file).name, name)] = cum.get((Path(file).name, name), 0.0) + ct
        if name == "search" and file.endswith("engine.py"):
            total += ct
    for label, file, name in STAGES:
        print(f"  {label}: {cum.get((file, name), 0.0) / max(total, 1e-9):.0%}")


if __name__ == "__main__":
    main()

"""R@1 and latency of the two vector backends on a set of the dev benchmark: FAISS and Milvus (milvus-lite).

    python3 bench/milvus_backend.py --bench /work/bench-rw --set clean_150 [--limit 100] [--home DIR]

Indexes the set's page images once (FAISS, in ``--home``), then opens the same home with
``vector_backend=milvus`` on a fresh milvus-lite file: its first search builds the collection from the
feature store (the repair path, which writes pages exactly as indexing does; timed as "build"). Both
backends then answer the same queries; R@1 is counted as the harness's run_eval.py counts it (top-1 page
relevant, over the queries with a relevant page in the set), and the top-10 lists are compared.
Writes bench/results/milvus_backend_<set>.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def page_key(path: str, page: int) -> tuple[str, int]:
    """'<doc>__pNNN.png' -> (doc, NNN) (the harness's naming of page images); a PDF page keeps its number."""
    name = Path(path).stem
    if "__p" in name:
        doc, num = name.rsplit("__p", 1)
        return doc, int(num)
    return name, page


def run(engine, queries: list[dict], k: int = 10) -> tuple[list[list[tuple[str, int]]], list[float]]:
    ranked, lat = [], []
    for q in queries:
        t0 = time.perf_counter()
        hits = engine.search(q["query"], k=k).hits
        lat.append(time.perf_counter() - t0)
        ranked.append([page_key(h.path, h.page) for h in hits])
    return ranked, lat


def r_at_1(
    queries: list[dict], ranked: list[list[tuple[str, int]]], indexed: set[tuple[str, int]]
) -> tuple[float, int]:
    n = hit = 0
    for q, top in zip(queries, ranked):
        rel = {(r["doc"], r["page"]) for r in q.get("relevant", [])} & indexed
        if q["type"].startswith("neg") or not rel:
            continue
        n += 1
        hit += bool(top) and top[0] in rel
    return hit / max(1, n), n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", type=Path, required=True)
    ap.add_argument("--set", default="clean_150")
    ap.add_argument("--limit", type=int, default=None, help="first N queries only")
    ap.add_argument("--home", type=Path, default=None, help="index folder (kept; default a temporary one)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--keep-milvus",
        action="store_true",
        help="reuse the milvus-lite file of an earlier run on this home (else rebuilt and timed)",
    )
    a = ap.parse_args()

    import torch

    torch.set_num_threads(a.threads)
    from tokensearch.engine import Engine
    from tokensearch.settings import Settings

    folder = a.bench / "data" / "scans" / a.set / "png"
    queries = [json.loads(line) for line in (a.bench / "data" / "queries.jsonl").read_text().splitlines() if line]
    queries = queries[: a.limit] if a.limit else queries
    home = a.home or Path(f"/tmp/ts-milvus-bench-{a.set}")
    indexed = {page_key(str(p), 1) for p in folder.glob("*.png")}

    faiss_eng = Engine(Settings(home=home, vector_backend="faiss", threads=a.threads))
    t0 = time.perf_counter()
    faiss_eng.index(folder)
    index_s = time.perf_counter() - t0
    vectors = faiss_eng.store.stats().vectors
    faiss_ranked, faiss_lat = run(faiss_eng, queries)
    faiss_eng.close()

    lite = home / "milvus-bench.db"
    if not a.keep_milvus:
        shutil.rmtree(lite, ignore_errors=True)
    milvus_eng = Engine(Settings(home=home, vector_backend="milvus", milvus_uri=str(lite), threads=a.threads))
    t0 = time.perf_counter()
    milvus_eng.store.verify()  # builds the collection from the feature store, then checks it
    build_s = time.perf_counter() - t0
    milvus_ranked, milvus_lat = run(milvus_eng, queries)
    problems = milvus_eng.store.verify()
    milvus_eng.close()

    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    out = {
        "set": a.set,
        "queries": len(queries),
        "pages": len(indexed),
        "vectors": vectors,
        "commit": commit,
        "index_s": round(index_s, 1),
        "milvus_problems": problems,
        # the collection built from the feature store and checked (kept from an earlier run: checked only)
        ("milvus_verify_s" if a.keep_milvus else "milvus_build_s"): round(build_s, 1),
        "same_top10": sum(f == m for f, m in zip(faiss_ranked, milvus_ranked)),
    }
    for name, ranked, lat in (("faiss", faiss_ranked, faiss_lat), ("milvus", milvus_ranked, milvus_lat)):
        r1, n_pos = r_at_1(queries, ranked, indexed)
        lat_sorted = sorted(lat)
        out[name] = {
            "R@1": round(r1, 4),
            "n_pos": n_pos,
            "lat_p50_ms": round(1000 * lat_sorted[len(lat) // 2], 1),
            "lat_p95_ms": round(1000 * lat_sorted[int(0.95 * (len(lat) - 1))], 1),
        }
    dest = ROOT / "bench" / "results" / f"milvus_backend_{a.set}.json"
    dest.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

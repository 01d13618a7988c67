"""Stage 1's blocked scan, this checkout's against another's, on the dev queries' own token rows: the same
cells asserted, CPU a scan compared in one process (interleaved, so the machine's load hits both alike).

    python3 bench/scan_ab.py --home H --against DIR [--data ../shared/bench/data] [--repeats 2]

H: an index whose vector index is flat (e.g. the dev benchmark's clean_150 scans); DIR: another checkout
(``git worktree add DIR COMMIT``). Every dev query is searched once to record the rows and k that stage 1
asks the vector index for; each recorded scan is then run by both ``scan_top_k`` in turn, one thread, over
the flat index's codes kept decoded as a search worker keeps them.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--against", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "bench" / "data")
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT))

    from threadpoolctl import threadpool_limits

    from tokensearch.engine import Engine
    from tokensearch.settings import Settings
    from tokensearch.storage import vectors

    name = "tokensearch.storage._vectors_against"  # the other checkout's module, under the package
    spec = importlib.util.spec_from_file_location(name, a.against / "tokensearch" / "storage" / "vectors.py")
    assert spec is not None and spec.loader is not None
    other = importlib.util.module_from_spec(spec)
    sys.modules[name] = other
    spec.loader.exec_module(other)

    threadpool_limits(1)
    vectors.keep_flat_decoded()
    scans: list[tuple[np.ndarray, int]] = []
    index: list[vectors.VectorIndex] = []
    search = vectors.VectorIndex.search

    def recording(self, q, k, pages=None):
        scans.append((np.array(q, dtype=np.float32), k))
        index[:] = [self]
        return search(self, q, k, pages)

    vectors.VectorIndex.search = recording  # type: ignore[method-assign]
    eng = Engine(Settings(home=a.home, threads=1))
    for line in (a.data / "queries.jsonl").open():
        eng.search(json.loads(line)["query"], k=10)
    flat = index[0]._flat_codes()
    assert flat is not None, "the index is not flat"
    codes = index[0]._decoded_codes(flat)
    cpu: dict[str, list[float]] = {"this": [], "against": []}
    for q, k in scans:
        for _ in range(a.repeats):
            got = {}
            for label, fn in (("this", vectors.scan_top_k), ("against", other.scan_top_k)):
                t = time.process_time()
                got[label] = fn(codes, q, k)
                cpu[label].append(time.process_time() - t)
            assert all(np.array_equal(x, y) for x, y in zip(got["this"], got["against"])), "different cells"
    rows = statistics.fmean(len(q) for q, _ in scans)
    print(f"{len(scans)} scans of {len(codes)} vectors, {rows:.1f} rows a scan on average; same cells")
    for label in cpu:
        ms = [1000 * x for x in cpu[label]]
        print(f"{label}: CPU a scan median {statistics.median(ms):.1f} ms, mean {statistics.fmean(ms):.1f}")


if __name__ == "__main__":
    main()

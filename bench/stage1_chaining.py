"""Stage 1 of this checkout against an earlier commit's, on the same index and query plans, interleaved.

    python3 bench/stage1_chaining.py --home W/big --against f1eb264~1 [--every 5] [--bench ../shared/bench]

The earlier commit's ``tokensearch/search/searcher.py`` (``git show``) is loaded beside this one's and both
rank the candidate pages (``Searcher._candidates``) of every ``--every``-th dev query's plan, one after the
other. Printed: the queries whose candidates are the same (the same list, in the same order), and each
side's median and mean milliseconds with their ratio.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--against", required=True, help="the commit whose stage 1 this one is compared with")
    ap.add_argument("--every", type=int, default=1)
    ap.add_argument("--bench", type=Path, default=ROOT.parent / "shared" / "bench")
    a = ap.parse_args()
    sys.path[:0] = [str(ROOT)]
    from tokensearch.engine import Engine
    from tokensearch.search.searcher import Searcher
    from tokensearch.settings import Settings

    source = subprocess.run(
        ["git", "show", f"{a.against}:tokensearch/search/searcher.py"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    ).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(source)
    spec = importlib.util.spec_from_file_location("tokensearch.search._searcher_before", f.name)
    assert spec is not None and spec.loader is not None
    before = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = before
    spec.loader.exec_module(before)
    Path(f.name).unlink()

    with Engine(Settings(home=a.home)) as eng:
        searcher = eng.searcher()
        queries = [json.loads(line)["query"] for line in open(a.bench / "data" / "queries.jsonl")][:: a.every]
        same, ms_before, ms_now = 0, [], []
        for q in queries:
            plan = searcher.plan(q, 256)
            if plan.vectors is None:
                continue
            t = time.perf_counter()
            was = before.Searcher._candidates(searcher, plan, 30)
            ms_before.append(1000 * (time.perf_counter() - t))
            t = time.perf_counter()
            now = Searcher._candidates(searcher, plan, 30)
            ms_now.append(1000 * (time.perf_counter() - t))
            same += was == now
        mb, mn = np.median(ms_before), np.median(ms_now)
        print(
            f"{eng.store.stats().pages} pages, {len(ms_now)} queries: the same candidates for {same}; stage 1 ms "
            f"median {mb:.0f} -> {mn:.0f} ({mb / mn:.2f}x), "
            f"mean {np.mean(ms_before):.0f} -> {np.mean(ms_now):.0f} ({np.mean(ms_before) / np.mean(ms_now):.2f}x)"
        )


if __name__ == "__main__":
    main()

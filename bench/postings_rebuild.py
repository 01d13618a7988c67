"""What a token-postings snapshot costs to rebuild at scale: seconds and the process's peak memory.

    python3 bench/postings_rebuild.py --pages 20000 [--cells 5500] [--churn 1000] [--out F]

Builds a snapshot of ``--pages`` pages' postings (each page ``--cells`` cells filed under 2 of 6,000 tokens, random
tokens, places and cosines: the rebuild sorts and merges, so only the sizes matter; the postings are handed to the
index directly, as ``add_page`` files them after scoring a page against the vocabulary, which is not measured
here), then, in a fresh process that loads it, adds ``--churn`` pages, removes ``--churn`` others and saves again,
as an indexer's snapshot does. Each step runs in a process of its own. Memory: the peak of its anonymous memory
(RssAnon, sampled every 20 ms while it saves), what the machine must hold; and its VmHWM, which also counts the pages
of the memory-mapped snapshot files it reads and writes, which the kernel can drop and read again.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

V, D, BEST = 6000, 8, 2


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


class _AnonPeak(threading.Thread):
    """The process's largest RssAnon while it runs."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak, self.done = _status_mb("RssAnon"), threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.02):
            self.peak = max(self.peak, _status_mb("RssAnon"))


def _fill(idx, first: int, n_pages: int, cells: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for p in range(first, first + n_pages):
        n = cells * BEST
        idx.fresh[p] = (
            rng.integers(0, V, n, dtype=np.int32),
            rng.integers(0, 200, (n, 2), dtype=np.int16),
            rng.random(n, dtype=np.float32).astype(np.float16),
        )
        idx.page_cells[p] = cells


def step(a: argparse.Namespace) -> dict:
    from tokensearch.storage.postings import PostingsIndex

    vocab = np.zeros((V, D), np.float32)
    vocab[:, 0] = 1.0
    if a.step == "build":
        idx = PostingsIndex.empty(D, {"type": "postings", "best": BEST, "chosen_at": 0}, vocab)
        _fill(idx, 1, a.pages, a.cells, 0)
    else:
        loaded = PostingsIndex.load(a.folder, vocab)
        assert loaded is not None
        idx = loaded
        _fill(idx, a.pages + 1, a.churn, a.cells, 1)
        idx.remove_pages(range(1, a.churn + 1))
    idx.generation += 1
    watch = _AnonPeak()
    watch.start()
    t = time.perf_counter()
    idx.save(a.folder)
    took = time.perf_counter() - t
    watch.done.set()
    watch.join()
    return {
        "step": a.step,
        "save_s": round(took, 1),
        "peak_anon_mb": round(max(watch.peak, _status_mb("RssAnon"))),
        "vm_hwm_mb": round(_status_mb("VmHWM")),
        "postings": len(idx.base) if idx.base is not None else 0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=20000)
    ap.add_argument("--cells", type=int, default=5500)
    ap.add_argument("--churn", type=int, default=1000)
    ap.add_argument("--folder", type=Path, default=Path("postings-rebuild"))
    ap.add_argument("--out", type=Path)
    ap.add_argument("--step", choices=["build", "churn"], help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.step:
        print(json.dumps(step(a)))
        return
    a.folder.mkdir(parents=True, exist_ok=True)
    report = {"pages": a.pages, "cells": a.cells, "churn": a.churn, "steps": []}
    for s in ("build", "churn"):
        args = [sys.executable, __file__, "--step", s, "--pages", str(a.pages), "--cells", str(a.cells)]
        out = subprocess.run(
            args + ["--churn", str(a.churn), "--folder", str(a.folder)], capture_output=True, text=True
        )
        if out.returncode:
            sys.exit(out.stderr)
        report["steps"].append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(report["steps"][-1], flush=True)
    if a.out:
        a.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

"""Indexing speed of tokensearch beside Tesseract on the same image pages, interleaved in one process.

The dev-benchmark run (``run_dev_bench.sh``) times each system's whole set one after the other, so a
busy minute lands on one system only. Here the pages are cut into rounds of ``--round`` pages, and
every round is indexed by Tesseract (the harness's own adapter: 2 processes, one thread each) and by
tokensearch (the engine in-process, its model loaded once, into one home), in alternating order: the
ratio of each round shares the machine's state, and the median over rounds is reported.

    python3 bench/index_speed.py --bench ../shared/bench --sets degraded_150 real_dev --pages 40 --round 10

``--one-read-thread`` adds a third system to every round: the engine with its pages read and encoded in one
background thread, as before the reading got a thread of its own (``tokensearch.indexer.readahead``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def slower(rows: list[dict]) -> float:
    """Median over rounds of the one-thread engine's time over the shipped engine's."""
    return round(statistics.median(t["one read thread"] / t["tokensearch"] for t in rows), 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", type=Path, default=ROOT.parent / "shared" / "bench")
    ap.add_argument("--sets", nargs="+", default=["degraded_150", "real_dev"])
    ap.add_argument("--pages", type=int, default=40, help="pages per set (the first N, by name)")
    ap.add_argument("--round", type=int, default=10, help="pages per interleaved round")
    ap.add_argument("--model", default=os.environ.get("TOKENSEARCH_MODEL", "mini"))
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--one-read-thread", action="store_true", help="also time reading and encoding in one thread")
    a = ap.parse_args()
    bench = a.bench.resolve()
    sys.path[:0] = [str(ROOT), str(bench)]
    import run_eval
    import torch
    from adapters.tesseract import TesseractAdapter
    from cli_latency import cpu_name  # (bench/ is the script's folder: first on sys.path)

    from tokensearch.engine import Engine
    from tokensearch.indexer import pipeline, readahead
    from tokensearch.settings import Settings

    class OneThread(readahead.ReadAhead):
        """Reading and encoding in the first thread; the second only hands the items on."""

        def __init__(self, paths, read, max_page_pixels, depth=4, then=None):
            both = read if then is None else (lambda reader: iter(then(read(reader))))
            super().__init__(paths, both, max_page_pixels, depth)

    torch.set_num_threads(2)
    report: dict = {"cpu": cpu_name(), "model": a.model, "round": a.round, "sets": {}}
    with tempfile.TemporaryDirectory(prefix="ts-speed-") as tmp:
        engine = Engine(Settings(home=Path(tmp) / "home", model=a.model))
        from PIL import Image

        blank = Image.new("L", (64, 64), 255)
        engine.encoder.encode_pages([blank])  # the model's load (and its int8 set-up) is not indexing
        systems = ["tesseract", "tokensearch"] + (["one read thread"] if a.one_read_thread else [])
        if a.one_read_thread:
            engine_one = Engine(Settings(home=Path(tmp) / "home-one", model=a.model))
            engine_one.encoder.encode_pages([blank])
        for name in a.sets:
            data = Path(run_eval.EXTERNAL_SETS.get(name, bench / "data"))
            folder = data / "scans" / name / "png"
            pages = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))[: a.pages]
            rows = []
            for r, i in enumerate(range(0, len(pages), a.round)):
                chunk = Path(tmp) / f"{name}-{r}"
                chunk.mkdir()
                for p in pages[i : i + a.round]:
                    (chunk / p.name).symlink_to(p)
                times = {}
                order = systems if r % 2 == 0 else systems[::-1]
                for system in order:
                    t0 = time.perf_counter()
                    if system == "tesseract":
                        TesseractAdapter(str(Path(tmp) / f"tess-{name}-{r}"), threads=2).index(str(chunk))
                    elif system == "tokensearch":
                        engine.index(chunk)
                    else:
                        real, pipeline.ReadAhead = pipeline.ReadAhead, OneThread
                        try:
                            engine_one.index(chunk)
                        finally:
                            pipeline.ReadAhead = real
                    times[system] = (time.perf_counter() - t0) / len(pages[i : i + a.round])
                rows.append(times)
                print(name, r, {k: round(v, 3) for k, v in times.items()}, flush=True)
            med = {s: statistics.median(t[s] for t in rows) for s in systems}
            ratio = statistics.median(t["tesseract"] / t["tokensearch"] for t in rows)
            report["sets"][name] = {
                "pages": len(pages),
                "rounds": len(rows),
                "s_per_page": med,
                "times_tesseract": round(ratio, 2),
                **({"one_read_thread_slower": slower(rows)} if a.one_read_thread else {}),
                "per_round": rows,
            }
            print(
                f"{name}: tesseract {med['tesseract']:.3f} s/page, tokensearch {med['tokensearch']:.3f} s/page, "
                f"tokensearch {ratio:.2f}x Tesseract's pages/s (median of {len(rows)} rounds)"
                + (f"; one read thread {slower(rows):.3f}x the time" if a.one_read_thread else ""),
                flush=True,
            )
        engine.close()
    print(report["cpu"])
    if a.out:
        a.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

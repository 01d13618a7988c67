"""Engine speed on generated documents: indexing pages/s (born-digital vs image-only), query latency
(in-process and through the CLI, process start included), index bytes per page.

    python3 bench/engine_speed.py [--pages 40] [--queries 40] [--model mini] [--out bench/results/engine_speed.json]

Documents are generated (tokensearch.samples), so the run needs nothing but the package. Every figure is
a median (latencies also p95) and indexing speed is also given as the ratio image-only / born-digital,
measured in the same process.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tokensearch.engine import Engine  # noqa: E402
from tokensearch.samples import PAGES, born_digital_pdf, image_only_pdf, make_sample_folder, rasterise_pdf  # noqa: E402
from tokensearch.settings import Settings  # noqa: E402

WORDS = (
    "invoice harbour crane committee meeting schedule container storage payment account amount total "
    "quarterly maintenance engineer replacement conference thursday march bristol logistics inspection "
    "refrigerated approved reviewed spare parts order blue room afternoon minutes steering"
).split()


def make_pages(n: int, seed: int = 0) -> list[list[str]]:
    rng = random.Random(seed)
    pages = []
    for p in range(n):
        lines = [
            f"Document {p} reference INV-{2000 + p}-{rng.randint(1000, 9999)} dated {rng.randint(1, 28)}/"
            f"{rng.randint(1, 12)}/20{rng.randint(10, 25)}"
        ]
        for _ in range(22):
            lines.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 10))))
        pages.append(lines)
    return pages


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=40)
    ap.add_argument("--queries", type=int, default=40)
    ap.add_argument("--cli-queries", type=int, default=10)
    ap.add_argument("--model", default="mini")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "engine_speed.json")
    a = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="ts_speed_"))
    pages = make_pages(a.pages)
    pdf, _ = born_digital_pdf(pages, fontsize=10)
    (tmp / "born").mkdir()
    (tmp / "born" / "doc.pdf").write_bytes(pdf)
    (tmp / "scan").mkdir()
    (tmp / "scan" / "doc.pdf").write_bytes(image_only_pdf(rasterise_pdf(pdf, 150), 150))

    make_sample_folder(tmp / "sample")  # the README's sample folder: born-digital + scanned PDF, PNG, TIFF
    sample_words = sorted({w.strip(".,:") for page in PAGES for line in page for w in line.split() if len(w) > 3})
    out: dict = {"pages": a.pages, "model": a.model}
    for kind in ("born", "scan", "sample"):
        home = tmp / f"home-{kind}"
        with Engine(Settings(home=home, model=a.model)) as eng:
            eng.encoder  # load the model outside the timed part
            t0 = time.perf_counter()
            rep = eng.index(tmp / kind)
            dt = time.perf_counter() - t0
            st = eng.store.stats()
            out[kind] = {
                "pages_per_s": round(rep.pages / dt, 2),
                "seconds": round(dt, 2),
                "pages_text": rep.pages_text,
                "pages_vision": rep.pages_vision,
                "bytes_per_page": int(st.bytes_per_page),
                "vector_index": st.vector_index_type,
            }
            rng = random.Random(1)
            vocab = sample_words if kind == "sample" else WORDS
            queries = (
                [rng.choice(vocab) for _ in range(a.queries // 2)]
                + [" ".join(rng.sample(vocab, 2)) for _ in range(a.queries // 4)]
                + [f'"{" ".join(pages[rng.randrange(len(pages))][3].split()[:2])}"' for _ in range(a.queries // 4)]
            )
            eng.search(queries[0])  # warm-up
            lat = []
            for q in queries:
                t = time.perf_counter()
                eng.search(q, k=10)
                lat.append((time.perf_counter() - t) * 1000)
            out[kind]["query_ms_p50"] = round(statistics.median(lat), 1)
            out[kind]["query_ms_p95"] = round(pct(lat, 0.95), 1)
        cli = []
        for q in queries[: a.cli_queries]:
            t = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "tokensearch", "search", q, "--home", str(home), "--json", "--model", a.model],
                check=True,
                capture_output=True,
                cwd=ROOT,
            )
            cli.append((time.perf_counter() - t) * 1000)
        out[kind]["cli_ms_p50"] = round(statistics.median(cli), 1)
        out[kind]["cli_ms_p95"] = round(pct(cli, 0.95), 1)
    out["scan_over_born_speed"] = round(out["scan"]["pages_per_s"] / out["born"]["pages_per_s"], 4)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

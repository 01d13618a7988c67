"""Wall time of a whole ``tokensearch search`` process on the README's sample index: searching in-process
(``--no-server``) and answered by a running ``tokensearch serve`` on the same home, interleaved run by run
so both see the same machine load.

    python3 bench/cli_latency.py [--runs 10] [--query INV-2023-0042]

Prints one JSON object: medians and minima in seconds, the ratio, and the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def cpu_name() -> str:
    """The CPU, its cores (this process may use) and the flags that decide the model's speed."""
    try:
        info = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()

    def field(key: str) -> str:  # the first processor's value
        return next((ln.split(":", 1)[1].strip() for ln in info if ln.split(":", 1)[0].strip() == key), "?")

    flags = set(field("flags").split())
    wanted = ["avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_bf16", "amx_int8"]
    have = "/".join(f for f in wanted if f in flags)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    # family and model tell AMD's generations apart where the model name is only "AMD EPYC"
    return f"{field('model name')} (family {field('cpu family')} model {field('model')}), {cores} cores, {have}" + (
        "" if "avx512_vnni" in flags or "avx_vnni" in flags else ", no VNNI"
    )


def run(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--query", default="INV-2023-0042")
    a = ap.parse_args()
    ts = [sys.executable, "-m", "tokensearch"]
    with tempfile.TemporaryDirectory() as tmp:
        docs, home = Path(tmp) / "docs", Path(tmp) / "home"
        subprocess.run(ts + ["sample", str(docs)], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(ts + ["index", str(docs), "--home", str(home), "--quiet"], check=True, stdout=subprocess.DEVNULL)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = dict(os.environ, TOKENSEARCH_SEARCH_WORKERS="1")
        server = subprocess.Popen(
            ts + ["serve", "--home", str(home), "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            search = ts + ["search", a.query, "--home", str(home)]
            run(search)  # warm the server and the page cache
            here, served = [], []
            for _ in range(a.runs):
                here.append(run(search + ["--no-server"]))
                served.append(run(search))
        finally:
            server.terminate()
            server.wait(30)
    out = {
        "query": a.query,
        "runs": a.runs,
        "in_process_median_s": round(statistics.median(here), 3),
        "in_process_min_s": round(min(here), 3),
        "server_median_s": round(statistics.median(served), 3),
        "server_min_s": round(min(served), 3),
        "ratio_in_process_to_server": round(statistics.median(here) / statistics.median(served), 2),
        "cpu": cpu_name(),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()

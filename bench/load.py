"""The served API under load: concurrent searchers, and an index job alone vs under that load.

    python3 bench/load.py [--home H] [--searchers 50 [N ...]] [--duration 60] [--job-pages 20] [--job-repeats 2]
                          [--workers N] [--out bench/results/load.json]

1. The index: the dev benchmark's clean 150 dpi image-only pages (137), built into ``--home`` (or a
   temporary home) unless it already holds them.
2. ``tokensearch serve`` on a free loopback port (its own process, as deployed; ``--workers`` sets
   TOKENSEARCH_SEARCH_WORKERS), with a job folder of ``--job-pages`` pages of the degraded 150 dpi scans
   (other content: the job really encodes them) as its ``--root``.
3. Search load, for each ``--searchers`` count: that many httpx async clients, each sending the dev queries (queries.jsonl, each
   searcher starting at its own place in the list) one after the other, no pause, for ``--duration``
   seconds after a warm-up; latency percentiles, searches/s, errors (any answer but 200, or none).
4. The index job (``POST /api/v1/index-jobs``, polled until done), timed alone and under the same search
   load, alternately ``--job-repeats`` times; its pages are removed after each run (``tokensearch remove``)
   so every run encodes them. Slowdown = median under load / median alone.

Prints a markdown table (with the CPU model and its AVX-512/VNNI/AMX flags, the commit, the server's
search workers) and writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from cli_latency import cpu_name  # (bench/ is the script's folder: first on sys.path)

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TOKENSEARCH_BENCH_DATA", "/work/shared/bench/data"))
PAGES = DATA / "scans" / "clean_150" / "png"
JOB_PAGES = DATA / "scans" / "degraded_150" / "png"
QUERIES = DATA / "queries.jsonl"
API = "/api/v1"


def commit() -> str:
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "tokensearch", "bench/load.py")
    return git("rev-parse", "--short", "HEAD") + (" (+ uncommitted changes)" if dirty else "")


def tokensearch(*args: str, home: Path, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tokensearch", *args, "--home", str(home)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=check,
    )


def ensure_index(home: Path) -> None:
    status = tokensearch("status", "--json", home=home, check=False)
    pages = json.loads(status.stdout).get("pages", 0) if status.returncode == 0 and status.stdout.strip() else 0
    if pages >= len(list(PAGES.glob("*.png"))):
        print(f"reusing the index in {home} ({pages} pages)", file=sys.stderr)
        return
    t = time.monotonic()
    tokensearch("index", str(PAGES), "--quiet", home=home)
    print(f"indexed {PAGES} into {home} in {time.monotonic() - t:.1f} s", file=sys.stderr)


def job_folder(dst: Path, n: int) -> Path:
    """``n`` pages of the degraded scans, spread over the documents."""
    files = sorted(JOB_PAGES.glob("*.png"))
    step = max(1, len(files) // n)
    dst.mkdir(parents=True, exist_ok=True)
    for f in files[::step][:n]:
        shutil.copy2(f, dst / f.name)
    return dst


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, home: Path, root: Path, workers: int | None, nice: int | None, log: Path):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        if workers is not None:
            env["TOKENSEARCH_SEARCH_WORKERS"] = str(workers)
        if nice is not None:
            env["TOKENSEARCH_SEARCH_NICE"] = str(nice)
        self.log = open(log, "w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tokensearch",
                "serve",
                "--home",
                str(home),
                "--port",
                str(self.port),
                "--root",
                str(root),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        t0 = time.monotonic()
        while True:
            try:
                if httpx.get(self.base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() - t0 > 180:
                raise SystemExit(f"tokensearch serve did not start; see {log}")
            time.sleep(0.3)
        self.start_s = time.monotonic() - t0

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@dataclass
class Load:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    t0: float = 0.0
    t1: float = 0.0

    def summary(self) -> dict:
        lat = sorted(self.latencies)
        q = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) >= 2 else lat * 99
        secs = max(self.t1 - self.t0, 1e-9)
        return {
            "searches": len(lat),
            "errors": len(self.errors),
            "seconds": round(secs, 1),
            "per_s": round(len(lat) / secs, 2),
            "p50_s": round(q[49], 3) if lat else None,
            "p95_s": round(q[94], 3) if lat else None,
            "max_s": round(lat[-1], 3) if lat else None,
            "error_examples": self.errors[:3],
        }


async def searcher(
    client: httpx.AsyncClient, queries: list[str], start: int, stop: asyncio.Event, counting: asyncio.Event, load: Load
) -> None:
    i = start
    while not stop.is_set():
        q = queries[i % len(queries)]
        i += 1
        t = time.perf_counter()
        try:
            r = await client.get(f"{API}/search", params={"q": q, "k": 10})
            ok, what = r.status_code == 200, f"{r.status_code} {r.text[:120]}"
        except httpx.HTTPError as exc:
            ok, what = False, f"{type(exc).__name__}: {exc}"
        dt = time.perf_counter() - t
        if counting.is_set() and not stop.is_set():
            (load.latencies.append(dt) if ok else load.errors.append(what))


async def run_load(
    base: str, queries: list[str], n: int, warmup: float, during=None, duration: float = 0.0
) -> tuple[Load, object]:
    """``n`` searchers: ``warmup`` s uncounted, then counted for ``duration`` s or until ``during(client)`` (a
    coroutine, e.g. an index job, given a client of its own: the searchers' connections are always busy)
    returns; returns the load and what ``during`` returned."""
    load, stop, counting = Load(), asyncio.Event(), asyncio.Event()
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=base, timeout=300, limits=limits) as client:
        step = max(1, len(queries) // n)
        tasks = [asyncio.create_task(searcher(client, queries, i * step, stop, counting, load)) for i in range(n)]
        await asyncio.sleep(warmup)
        counting.set()
        load.t0 = time.perf_counter()
        if during is not None:
            async with httpx.AsyncClient(base_url=base, timeout=300) as own:
                result = await during(own)
        else:
            result = await asyncio.sleep(duration)
        load.t1 = time.perf_counter()
        stop.set()
        await asyncio.gather(*tasks)
    return load, result


async def index_job(client: httpx.AsyncClient, folder: Path) -> dict:
    t = time.perf_counter()
    r = await client.post(f"{API}/index-jobs", json={"path": str(folder)})
    r.raise_for_status()
    job = r.json()
    while job["status"] in ("queued", "running"):
        await asyncio.sleep(0.2)
        job = (await client.get(f"{API}/index-jobs/{job['id']}")).json()
    wall = time.perf_counter() - t
    if job["status"] != "done" or job["report"]["pages"] == 0:
        raise SystemExit(f"index job did not index: {job}")
    return {"wall_s": round(wall, 2), "pages": job["report"]["pages"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", type=Path, help="index home (built if it lacks the pages; default: a temporary one)")
    ap.add_argument(
        "--searchers",
        type=int,
        nargs="+",
        default=[50],
        help="searcher counts of the search-load runs; the index job runs under the first",
    )
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of counted search load")
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds of load before counting")
    ap.add_argument("--job-pages", type=int, default=20)
    ap.add_argument("--job-repeats", type=int, default=2, help="index job runs alone and under load, alternately")
    ap.add_argument("--workers", type=int, help="TOKENSEARCH_SEARCH_WORKERS (default: the server's, one per core)")
    ap.add_argument("--nice", type=int, help="TOKENSEARCH_SEARCH_NICE (default: the server's, 5)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "load.json")
    args = ap.parse_args()

    queries = [json.loads(line)["query"] for line in QUERIES.read_text().splitlines() if line.strip()]
    tmp = Path(tempfile.mkdtemp(prefix="tokensearch-load-"))
    home = args.home or tmp / "home"
    ensure_index(home)
    folder = job_folder(tmp / "jobroot" / "job", args.job_pages)
    tokensearch("remove", str(folder), home=home, check=False)  # a previous run's leftovers, if any
    server = Server(home, folder.parent, args.workers, args.nice, tmp / "serve.log")
    alone: list[dict] = []
    loaded: list[tuple[dict, dict]] = []
    try:
        print(
            f"server up in {server.start_s:.1f} s; search load: {args.searchers} searchers, {args.duration:.0f} s",
            file=sys.stderr,
        )
        searches = {}
        for n in args.searchers:
            load, _ = asyncio.run(run_load(server.base, queries, n, args.warmup, duration=args.duration))
            searches[n] = load.summary()
            print(json.dumps({"searchers": n, **searches[n]}), file=sys.stderr)
        n_job = args.searchers[0]

        async def job_alone() -> dict:
            async with httpx.AsyncClient(base_url=server.base, timeout=300) as c:
                return await index_job(c, folder)

        for _ in range(args.job_repeats):
            alone.append(asyncio.run(job_alone()))
            tokensearch("remove", str(folder), home=home)
            load, job = asyncio.run(
                run_load(server.base, queries, n_job, args.warmup, during=lambda c: index_job(c, folder))
            )
            loaded.append((job, load.summary()))
            tokensearch("remove", str(folder), home=home)
            print(json.dumps({"alone": alone[-1], "under_load": job, "search_during": loaded[-1][1]}), file=sys.stderr)
    finally:
        server.stop()
        if args.home is None:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            shutil.rmtree(tmp / "jobroot", ignore_errors=True)

    t_alone = statistics.median(j["wall_s"] for j in alone)
    t_load = statistics.median(j["wall_s"] for j, _ in loaded)
    during = [s for _, s in loaded]
    result = {
        "cpu": cpu_name(),
        "commit": commit(),
        "searchers": args.searchers,
        "workers": args.workers,
        "nice": args.nice,
        "search": searches,
        "job_alone": alone,
        "job_under_load": [j for j, _ in loaded],
        "search_during_job": during,
        "slowdown": round(t_load / t_alone, 2),
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))

    workers = args.workers if args.workers is not None else "one per core"
    nice = args.nice if args.nice is not None else "default"
    print(f"\n{result['when']}, commit {result['commit']}, {result['cpu']}; search workers: {workers}, nice {nice}\n")
    print("| load | searches | searches/s | p50 s | p95 s | max s | errors |")
    print("|---|---|---|---|---|---|---|")
    for n, s in searches.items():
        print(
            f"| {n} searchers, {s['seconds']:.0f} s | {s['searches']} | {s['per_s']} | {s['p50_s']} | "
            f"{s['p95_s']} | {s['max_s']} | {s['errors']} |"
        )
    for job, d in loaded:
        print(
            f"| {n_job} searchers during an index job ({d['seconds']:.0f} s) | {d['searches']} | "
            f"{d['per_s']} | {d['p50_s']} | {d['p95_s']} | {d['max_s']} | {d['errors']} |"
        )
    print(f"\n| index job ({args.job_pages} pages) | alone s | under {n_job} searchers s | slowdown |")
    print("|---|---|---|---|")
    print(
        f"| runs: {', '.join(str(j['wall_s']) for j in alone)} / "
        f"{', '.join(str(j['wall_s']) for j, _ in loaded)} | {t_alone:.1f} | {t_load:.1f} | "
        f"{result['slowdown']}x |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

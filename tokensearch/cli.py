"""The ``tokensearch`` console script: index, watch, search, status, remove, heatmap, serve, train, finetune."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .allocator import reuse_freed_memory
from .errors import TokensearchError
from .pathnames import shown

if TYPE_CHECKING:  # imported where used: a search answered by a running server never needs pydantic
    from .filters import SearchFilter
    from .settings import Settings

# flag -> Settings field, for the flags every sub-command shares
_COMMON = ("home", "database_url", "vector_backend", "milvus_uri", "model", "device", "dtype", "threads", "cell_pool")


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("index and model (env TOKENSEARCH_*)")
    g.add_argument("--home", type=Path, help="folder holding the index (default ./.tokensearch)")
    g.add_argument("--database-url", help="SQLAlchemy URL of the metadata DB (default SQLite under --home)")
    g.add_argument(
        "--vector-backend",
        choices=["faiss", "milvus"],
        help="where cell vectors live: faiss (default, in each process) or milvus (docs/scale.md)",
    )
    g.add_argument(
        "--milvus-uri", help="Milvus server URI (http://host:19530) or milvus-lite file (default <home>/milvus.db)"
    )
    g.add_argument("--model", help="mini (default) | mini:/weights-dir | tokenocr:/path/to/checkpoint")
    g.add_argument("--device", help="cpu (default) | cuda | cuda:N")
    g.add_argument(
        "--dtype",
        choices=["auto", "float32", "bfloat16", "float16", "int8"],
        help="auto (default): for the mini model on a CPU int8 (what its thresholds are calibrated in); "
        "other models bfloat16 where the CPU/GPU computes it natively, or float32",
    )
    g.add_argument("--threads", type=int, help="CPU threads for the model")
    g.add_argument("--cell-pool", type=int, help="TokenOCR: average k x k feature cells (default 2)")
    g.add_argument("-v", "--verbose", action="store_true", help="log details")


def _page_options(p: argparse.ArgumentParser) -> None:
    """How pages are read and encoded: the same options for ``index`` and ``watch``."""
    p.add_argument("--text-layer", choices=["auto", "off"], help="build born-digital PDF pages from their text")
    p.add_argument(
        "--image-scale",
        choices=["auto", "off"],
        help="auto (default): shrink large scans and photos so their text has the model's size, and straighten "
        "pages whose lines lean by a degree or more; off: read images as they are",
    )
    p.add_argument("--batch-size", type=int)
    p.add_argument(
        "--cell-code",
        choices=["int8", "pq"],
        help="how a new index stores the cells the model reads: int8 (default; the mini model's in the 48 "
        "dimensions its vocabulary spans, 48 bytes a cell) or pq, the model's product quantiser of all 96 "
        "(48 bytes, R@1 up to a point lower; BENCHMARKS.md)",
    )


def settings_from_args(args: argparse.Namespace, **extra: object) -> Settings:
    """Environment first, then every flag the user actually gave."""
    given = {k: getattr(args, k) for k in _COMMON if getattr(args, k, None) is not None}
    given.update({k: v for k, v in extra.items() if v is not None})
    from .settings import Settings

    return Settings(**given)


def build_parser(wanted: str | None = None) -> argparse.ArgumentParser:
    """The parser; ``wanted`` names the sub-command about to run (others with light options only)."""
    parser = argparse.ArgumentParser(prog="tokensearch", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", help="index a folder (again: only new or changed files)")
    p.add_argument("folder", type=Path)
    _page_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _common(p)

    p = sub.add_parser("watch", help="index folders, then keep the index in sync with them until stopped")
    p.add_argument("folders", type=Path, nargs="+", metavar="DIR", help="folders to index and follow")
    p.add_argument(
        "--quiet-seconds",
        type=float,
        dest="watch_quiet_s",
        metavar="S",
        help="read a file once nothing wrote to it for this long (default 2; env TOKENSEARCH_WATCH_QUIET_S)",
    )
    p.add_argument(
        "--rescan-seconds",
        type=float,
        dest="watch_rescan_s",
        metavar="S",
        help="full incremental pass this often, for lost events (default 300; TOKENSEARCH_WATCH_RESCAN_S)",
    )
    _page_options(p)
    _common(p)

    p = sub.add_parser("search", help="search the index")
    p.add_argument("query")
    p.add_argument("-k", type=int, default=10, help="pages to return (default 10)")
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--threshold", type=float, help="minimum score of a hit (default: the model's calibrated one)")
    p.add_argument(
        "--phrase-threshold",
        type=float,
        help="score from which a query's several words count, never "
        "above --threshold (default: the model's calibrated one)",
    )
    p.add_argument(
        "--verify-weight",
        type=float,
        help="weight of the check that the model reads the query's "
        "tokens rather than others (0 = off; default: the model's calibrated one)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output (DESIGN.md §5)")
    f = p.add_argument_group("filters (only documents matching all of them)")
    f.add_argument(
        "--path",
        metavar="GLOB",
        help="path glob relative to the folder a document was indexed or watched "
        "from ('invoices/2024/*'; ** spans folders; no / = file name at any depth; absolute: absolute path)",
    )
    f.add_argument("--type", choices=["pdf", "image"], help="only PDFs or only images")
    f.add_argument(
        "--modified-after",
        metavar="DATE",
        help="files modified at or after DATE (2024-01-31, or an ISO date-time; UTC without an offset)",
    )
    f.add_argument("--modified-before", metavar="DATE", help="files modified before DATE")
    f.add_argument("--doc", type=int, metavar="ID", help="only this document (id as in the API)")
    p.add_argument(
        "--no-server",
        action="store_true",
        help="search in this process even when a `tokensearch serve` on the same index is running",
    )
    _common(p)

    p = sub.add_parser("sample", help="write a sample folder (born-digital PDF, scanned PDF, PNG and TIFF scans)")
    p.add_argument("folder", type=Path)

    p = sub.add_parser("status", help="documents, pages, failures")
    p.add_argument("--json", action="store_true")
    _common(p)

    p = sub.add_parser("remove", help="forget a file (or every file under a folder)")
    p.add_argument("path", type=Path)
    _common(p)

    # sub-commands whose options live with their code: import that code only when the command runs
    # (a `search` must not pay for importing the viewer's web framework or the training stack)
    p = sub.add_parser(
        "heatmap",
        help="per-token similarity maps of a query over a page image or PDF page "
        "(inferno colours, as in the viewer: dark = low, yellow = high)",
    )
    if wanted == "heatmap":
        from .heatmap import add_heatmap_arguments

        add_heatmap_arguments(p)
        _common(p)
    p = sub.add_parser("serve", help="REST API and web viewer")
    if wanted == "serve":
        from .api.serve import add_serve_arguments

        add_serve_arguments(p)
        _common(p)
    p_train = sub.add_parser("train", help="train the embedded mini model from scratch")
    p_fine = sub.add_parser("finetune", help="fine-tune the mini model on a folder of born-digital PDFs")
    if wanted in ("train", "finetune"):
        from .training.cli_args import add_finetune_arguments, add_train_arguments

        add_train_arguments(p_train)
        add_finetune_arguments(p_fine)
    return parser


def _progress_bar(quiet: bool):
    """A tqdm bar with pages/s and ETA on a terminal; silent when stderr is not a TTY."""
    from tqdm import tqdm

    if quiet or not sys.stderr.isatty():
        return None, None
    bar = tqdm(total=0, unit="page", dynamic_ncols=True, smoothing=0.1)

    def update(ev) -> None:
        bar.total = ev.pages_total
        bar.n = ev.pages_done
        bar.set_postfix_str(f"files {ev.files_done}/{ev.files_total} failed {ev.failures}", refresh=False)
        bar.refresh()

    return bar, update


def cmd_index(args: argparse.Namespace) -> int:
    from .engine import Engine

    settings = settings_from_args(
        args,
        text_layer=args.text_layer,
        image_scale=args.image_scale,
        batch_size=args.batch_size,
        cell_code=args.cell_code,
    )
    bar, update = _progress_bar(args.quiet)
    with Engine(settings) as eng:
        try:
            report = eng.index(args.folder, progress=update)
        finally:
            if bar is not None:
                bar.close()
    for path, reason in report.failed:
        print(f"FAILED {shown(path)}: {reason}", file=sys.stderr)
    for path, message in report.warnings:
        print(f"WARNING {shown(path)}: {message}", file=sys.stderr)
    print(
        f"indexed {report.pages} pages ({report.pages_text} from text layers, {report.pages_vision} by the model) "
        f"in {report.seconds:.1f}s ({report.pages_per_s:.2f} pages/s); files: {report.added} new, "
        f"{report.updated} changed, {report.unchanged} unchanged, {report.duplicates} duplicate, "
        f"{report.removed} removed, {len(report.failed)} failed"
    )
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    import signal
    import threading

    from .engine import Engine
    from .errors import NotFound
    from .indexer.watch import FolderWatcher, WatchOptions

    settings = settings_from_args(
        args,
        text_layer=args.text_layer,
        image_scale=args.image_scale,
        batch_size=args.batch_size,
        cell_code=args.cell_code,
        watch_quiet_s=args.watch_quiet_s,
        watch_rescan_s=args.watch_rescan_s,
    )
    missing = [shown(str(f)) for f in args.folders if not f.is_dir()]
    if missing:
        raise NotFound(
            f"not a folder: {', '.join(missing)} (tokensearch watch follows folders; index a file with "
            "tokensearch index)"
        )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # stop between files: what was committed is kept
        signal.signal(sig, lambda *_: stop.set())
    logging.getLogger("tokensearch.indexer.watch").setLevel(logging.INFO)  # one line per batch of changes
    with Engine(settings) as eng:
        watcher = FolderWatcher(
            eng,
            list(args.folders),
            settings.home,
            WatchOptions(quiet_s=settings.watch_quiet_s, rescan_s=settings.watch_rescan_s),
        )
        print(f"watching {', '.join(watcher.state.roots)} into {settings.home} (Ctrl-C to stop)", file=sys.stderr)
        watcher.run(stop)
    t = watcher.state.totals
    print(
        f"stopped after {watcher.state.passes} passes: {t['added']} new, {t['updated']} changed, "
        f"{t['duplicates']} duplicate, {t['removed']} removed, {t['failed']} failed, {t['pages']} pages"
    )
    return 0


def _watch_line(watch: dict) -> str:
    """One line on the home's watcher for ``tokensearch status``."""
    t = watch.get("totals") or {}
    line = (
        f"{watch.get('state')} (pid {watch.get('pid')}, {', '.join(watch.get('roots') or [])}); "
        f"{watch.get('pending', 0)} pending, last pass {watch.get('last_pass_at') or '-'}; since "
        f"{watch.get('started_at')}: {t.get('added', 0)} new, {t.get('updated', 0)} changed, "
        f"{t.get('removed', 0)} removed, {t.get('failed', 0)} failed"
    )
    return line + (f"; error: {watch['error']}" if watch.get("error") else "")


# a hit's fields in ``search --json``: DESIGN.md §5's four, then what was added since (never removed or renamed)
HIT_FIELDS = ("path", "page", "score", "boxes", "text", "modified", "pages", "type", "doc_id")


def cmd_search(args: argparse.Namespace) -> int:
    from .filters import SearchFilter

    narrow = SearchFilter.of(args.path, args.type, args.modified_after, args.modified_before, args.doc)
    answer = None if args.no_server else _search_by_server(args, narrow)
    if answer is None:
        from .engine import Engine

        with Engine(
            settings_from_args(
                args, threshold=args.threshold, phrase_threshold=args.phrase_threshold, verify_weight=args.verify_weight
            )
        ) as eng:
            res = eng.search(args.query, k=args.k, offset=args.offset, filter=narrow or None)
        answer = {
            "query": res.query,
            "total": res.total,
            "took_ms": res.took_ms,
            "hits": [
                {
                    "path": shown(h.path),
                    "page": h.page,
                    "score": h.score,
                    "boxes": h.boxes,
                    "text": h.text,
                    "modified": h.modified,
                    "pages": h.pages,
                    "type": h.kind,
                    "doc_id": h.doc_id,
                }
                for h in res.hits
            ],
        }
    query, hits = answer["query"], answer["hits"]
    if args.json:
        print(json.dumps({"query": query, "hits": [{k: h.get(k) for k in HIT_FIELDS} for h in hits]}))
        return 0
    if not hits:
        print(f"no page shows {query!r} ({answer['took_ms']:.0f} ms)")
        return 0
    width = max(len(h["path"]) for h in hits)
    print(f"{'#':>3}  {'score':>6}  {'page':>7}  {'path':<{width}}  {'modified':<10}  read  boxes")
    for i, h in enumerate(hits, 1 + args.offset):
        boxes = h["boxes"]
        first = " ".join(f"[{b[0]:.3f},{b[1]:.3f},{b[2]:.3f},{b[3]:.3f}]" for b in boxes[:2])
        more = f" +{len(boxes) - 2}" if len(boxes) > 2 else ""
        page = f"{h['page']}/{h.get('pages') or '?'}"
        print(
            f"{i:>3}  {h['score']:>6.3f}  {page:>7}  {h['path']:<{width}}  {(h.get('modified') or '-')[:10]:<10}  "
            f"{json.dumps(h.get('text') or '', ensure_ascii=False)}  {first}{more}"
        )
    print(f"{answer['total']} page(s) match, {answer['took_ms']:.0f} ms")
    return 0


def _search_by_server(args: argparse.Namespace, narrow: SearchFilter) -> dict | None:
    """The answer of a running ``tokensearch serve`` on the same index (said on stderr), or None: then the
    search runs here. Flags that change what is searched or how it is scored keep it here."""
    from . import local_server as ls

    if any(v is not None for v in (args.threshold, args.phrase_threshold, args.verify_weight)):
        return None
    env = os.environ.get
    note = ls.running_server(
        ls.home_of(args.home),
        args.database_url or env(ls.ENV_PREFIX + "DATABASE_URL"),
        args.model or env(ls.ENV_PREFIX + "MODEL"),
    )
    if note is None:
        return None
    answer = ls.search(note, args.query, args.k, args.offset, env(ls.ENV_PREFIX + "API_KEY"), narrow.params())
    if answer is not None:
        print(
            f"(answered by the tokensearch server at {note.url}, pid {note.pid}; --no-server searches here)",
            file=sys.stderr,
        )
    return answer


def cmd_sample(args: argparse.Namespace) -> int:
    from .samples import make_sample_folder

    s = make_sample_folder(args.folder)
    print(f"wrote {s.born_digital}, {s.image_pdf}, {len(s.pngs)} PNG scans, {s.tiff} and a phone photo {s.photo}")
    return 0


_BYTE_FIELDS = ("index_bytes", "bytes_per_page", "feature_bytes", "vector_bytes", "database_bytes")


def _size(n: float) -> str:
    """Bytes as a person reads them, in powers of 1000 as ``du --si`` and BENCHMARKS.md count them: 485.3 kB."""
    if n < 1000:
        return f"{n:.0f} B"
    units = ("kB", "MB", "GB", "TB")
    i = 0
    while n >= 1000 ** (i + 2) and i + 1 < len(units):
        i += 1
    return f"{n / 1000 ** (i + 1):.1f} {units[i]}"


def cmd_status(args: argparse.Namespace) -> int:
    from .engine import Engine
    from .indexer.watch import read_state

    settings = settings_from_args(args)
    with Engine(settings) as eng:
        st = eng.stats()
        model = eng.indexed_model()
    watch = read_state(settings.home)  # the home's watcher (tokensearch watch, or the server's), if any ran
    listed = {"failures": st.failures, "warnings": st.warnings}  # (path, why) pairs, paths shown escaped
    fields = vars(st)  # its model is named by the first line, or by --json's "model"
    if args.json:
        out = dict(fields)
        out.update({k: [(shown(p), m) for p, m in pairs] for k, pairs in listed.items()})
        out["model"] = None if model is None else {"name": model.name, "fingerprint": model.fingerprint}
        out["watch"] = watch
        print(json.dumps(out, default=str))
        return 0
    print(f"model:     {model.name + ' (' + model.fingerprint[:12] + ')' if model else '-'}")
    if watch is not None:
        print(f"watch:     {_watch_line(watch)}")
    for k, v in fields.items():
        if k in listed or k == "model":  # the model is the first line
            continue
        if k in _BYTE_FIELDS:
            v = _size(v)
        elif k == "pages_by_source":
            v = ", ".join(f"{source} {n}" for source, n in sorted(v.items())) or "-"
        print(f"{k + ':':<18} {v}")
    for k, pairs in listed.items():
        print(f"{k + ':':<18} {len(pairs)}")
        for path, why in pairs:
            print(f"  {shown(path)}: {why}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    from .engine import Engine

    with Engine(settings_from_args(args)) as eng:
        n = eng.remove(args.path)
    print(f"removed {n} path(s)")
    return 0


def cmd_heatmap(args: argparse.Namespace) -> int:
    from .engine import Engine
    from .heatmap import run_heatmap

    with Engine(settings_from_args(args)) as eng:
        return int(run_heatmap(args, eng.encoder) or 0)


def cmd_serve(args: argparse.Namespace) -> int:
    from .api.serve import run_serve

    return int(run_serve(args, settings_from_args(args)) or 0)


def cmd_train(args: argparse.Namespace) -> int:
    from .training.cli_args import run_train

    return int(run_train(args) or 0)


def cmd_finetune(args: argparse.Namespace) -> int:
    from .training.cli_args import run_finetune

    return int(run_finetune(args) or 0)


COMMANDS = {
    "sample": cmd_sample,
    "index": cmd_index,
    "watch": cmd_watch,
    "search": cmd_search,
    "status": cmd_status,
    "remove": cmd_remove,
    "heatmap": cmd_heatmap,
    "serve": cmd_serve,
    "train": cmd_train,
    "finetune": cmd_finetune,
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    reuse_freed_memory()  # indexing and searching allocate page-sized arrays by the hundred
    wanted = next((a for a in argv if a in COMMANDS), None)
    args = build_parser(wanted).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return COMMANDS[args.command](args)
    except TokensearchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: what was committed is kept; run the same command again to finish", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader left (`tokensearch search ... | head`): not an error to report
        # what is still buffered must not fail again when Python flushes stdout at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell tool reports when its reader goes away

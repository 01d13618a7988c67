"""A training-data pack that travels: the PDFs, fonts, word list and prose that the data engine reads from
this machine, in one folder small enough to carry to a machine that has none of them (a lent GPU: no
network, no Debian packages; docs/mini.md, "Training on a lent GPU").

    python -m tokensearch.training.datapack --pdf-dir PDFS --out runs/gpu-pack [--pdf-mib 22] [--pages 6]

What a pack holds (``pack.json`` lists it):

- ``pdfs/``: born-digital PDFs, each cut down to at most ``--pages`` of its usable pages
  (:func:`.from_pdfs.usable_page`, drawn at random), as many files as fit in ``--pdf-mib``, taken in a
  seeded random order. A few pages of many documents teach more than all the pages of a few: the fonts
  and the layout change from document to document. File names are kept, so the held-out split
  (:func:`.from_pdfs.split_of`) is the full folder's;
- ``assets.tar.xz``: ``fonts/`` (the files :func:`.synth.font_files` finds here), ``words`` (the word list
  of :func:`.textgen.dictionary_words`) and ``prose.txt`` (:func:`.textgen.prose_lines`, one a line).

After ``tar -xJf assets.tar.xz -C DIR``, :func:`asset_env` (``python -m tokensearch.training.datapack --env
DIR``) gives the environment variables that point the data engine at them.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shlex
import tarfile
import time
from multiprocessing import Pool
from pathlib import Path
from typing import Literal

ASSETS = "assets.tar.xz"
PDF_DIR = "pdfs"


def cut_pdf(path: Path, pages: int, seed: int = 0) -> tuple[bytes, int] | None:
    """``path`` reduced to at most ``pages`` of its usable pages (random, seeded by the file name; kept in
    their order), with unused objects dropped: (PDF bytes, pages), or None when no page is usable."""
    import pymupdf

    from .from_pdfs import usable_page

    pymupdf.TOOLS.mupdf_display_errors(False)  # broken resources in some files: they render anyway
    rng = random.Random(f"{seed}:{path.name}")
    try:
        with pymupdf.open(path) as doc:
            if doc.needs_pass or doc.page_count == 0:
                return None
            order = list(range(doc.page_count))
            rng.shuffle(order)
            keep = sorted([i for i in order[: 3 * pages] if usable_page(doc[i])][:pages])
            if not keep:
                return None
            with pymupdf.open() as out:
                for i in keep:
                    out.insert_pdf(doc, from_page=i, to_page=i)
                return out.tobytes(garbage=4, deflate=True), len(keep)
    except Exception:  # a broken file is left out, as training would skip it
        return None


def _cut(args: tuple[Path, int, int]) -> tuple[Path, tuple[bytes, int] | None]:
    return args[0], cut_pdf(*args)


def pack_pdfs(
    pdf_dir: str | Path,
    out: Path,
    max_bytes: int,
    pages: int = 6,
    max_file_bytes: int = 160 * 1024,
    seed: int = 0,
    workers: int = 2,
) -> list[dict]:
    """Cut PDFs of ``pdf_dir`` into ``out`` (seeded random order) until ``max_bytes``; returns their records.
    Files whose cut is over ``max_file_bytes`` (big figures, many embedded fonts) are skipped: with the
    TeX Live documentation, 160 KiB keeps about half of the files and doubles the files and pages that fit
    (22 MiB: ~270 files, ~1200 pages, against 146 and 673 with 400 KiB)."""
    from .from_pdfs import find_pdfs, split_of

    files = find_pdfs(pdf_dir)  # refuses held-out evaluation data
    random.Random(seed).shuffle(files)
    out.mkdir(parents=True, exist_ok=True)
    picked, total, misses = [], 0, 0
    jobs = [(f, pages, seed) for f in files]
    with Pool(max(1, workers)) as pool:
        for f, cut in pool.imap(_cut, jobs, chunksize=2):
            if cut is None or len(cut[0]) > max_file_bytes:
                continue
            if total + len(cut[0]) > max_bytes:  # full, unless smaller cuts still fit
                misses += 1
                if misses >= 20 or max_bytes - total < 20_000:
                    break
                continue
            (out / f.name).write_bytes(cut[0])
            total += len(cut[0])
            picked.append({"name": f.name, "pages": cut[1], "bytes": len(cut[0]), "split": split_of(f)})
        pool.terminate()
    return picked


def _add_file(tar: tarfile.TarFile, arcname: str, data: bytes) -> None:
    info = tarfile.TarInfo(arcname)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


def pack_assets(out: Path, preset: Literal[0, 1, 2, 3, 4, 5, 6, 7, 8, 9] = 9) -> dict:  # xz presets
    """``out/assets.tar.xz``: this machine's fonts (as :func:`.synth.font_files` finds them), word list and
    prose lines; returns what went in."""
    from .synth import font_files
    from .textgen import dict_paths, prose_lines

    fonts = font_files()
    root = os.path.commonpath(fonts) if len(fonts) > 1 else str(Path(fonts[0]).parent) if fonts else ""
    words = next((p for p in dict_paths() if p.exists()), None)
    prose = prose_lines()
    with tarfile.open(out / ASSETS, "w:xz", preset=preset) as tar:
        for f in fonts:
            _add_file(tar, f"fonts/{os.path.relpath(f, root)}", Path(f).read_bytes())  # links followed
        if words is not None:
            _add_file(tar, "words", words.read_bytes())
        _add_file(tar, "prose.txt", "".join(line + "\n" for line in prose).encode())
    return {
        "fonts": [os.path.relpath(f, root) for f in fonts],
        "fonts_from": root,
        "words_from": str(words) if words else None,
        "prose_lines": len(prose),
    }


def asset_env(root: str | Path) -> dict[str, str]:
    """Environment variables that point the data engine at unpacked assets (see :mod:`.synth`, :mod:`.textgen`)."""
    root = Path(root).absolute()
    env = {"TOKENSEARCH_FONT_DIRS": str(root / "fonts"), "TOKENSEARCH_PROSE": str(root / "prose.txt")}
    if (root / "words").is_file():
        env["TOKENSEARCH_DICT"] = str(root / "words")
    return env


def data_summary() -> dict:
    """What the data engine reads in this environment (a preflight check before a long run)."""
    from .synth import font_files
    from .textgen import dictionary_words, prose_lines

    return {"fonts": len(font_files()), "words": len(dictionary_words()), "prose_lines": len(prose_lines())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tokensearch.training.datapack", description=__doc__.split("\n")[0])
    ap.add_argument("--pdf-dir", help="folder of born-digital PDFs (searched recursively)")
    ap.add_argument("--out", help="pack folder to write (created)")
    ap.add_argument("--pdf-mib", type=float, default=22.0, help="size of the cut PDFs (default 22 MiB)")
    ap.add_argument("--pages", type=int, default=6, help="usable pages kept per PDF (default 6)")
    ap.add_argument("--max-file-kib", type=float, default=160.0, help="skip files whose cut is larger (default 160)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument(
        "--env",
        metavar="DIR",
        help="print the environment (`export NAME=value` lines) for assets "
        "unpacked in DIR, then (as a comment) what the data engine finds there, and exit",
    )
    args = ap.parse_args(argv)
    if args.env:
        env = asset_env(args.env)
        os.environ.update(env)
        for k, v in env.items():
            print(f"export {k}={shlex.quote(v)}")  # for a shell's eval
        print(f"# {json.dumps(data_summary())}")
        return 0
    if not args.pdf_dir or not args.out:
        ap.error("--pdf-dir and --out are required")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t = time.time()
    pdfs = pack_pdfs(
        args.pdf_dir,
        out / PDF_DIR,
        int(args.pdf_mib * 2**20),
        args.pages,
        int(args.max_file_kib * 1024),
        args.seed,
        args.workers,
    )
    if not pdfs:
        raise SystemExit(f"no usable PDF under {args.pdf_dir}")
    assets = pack_assets(out)
    record = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "pdf_source": str(Path(args.pdf_dir).resolve()),
        "pdf_files": len(pdfs),
        "pdf_pages": sum(p["pages"] for p in pdfs),
        "pdf_val_files": sum(p["split"] == "val" for p in pdfs),
        "pdf_bytes": sum(p["bytes"] for p in pdfs),
        "assets_bytes": (out / ASSETS).stat().st_size,
        **assets,
        "pdfs": pdfs,
        "settings": {k: getattr(args, k) for k in ("pdf_mib", "pages", "max_file_kib", "seed")},
    }
    (out / "pack.json").write_text(json.dumps(record, indent=1) + "\n")
    print(
        f"{out}: {record['pdf_files']} PDFs ({record['pdf_val_files']} held out for validation), "
        f"{record['pdf_pages']} pages, {record['pdf_bytes'] / 2**20:.1f} MiB; assets "
        f"{record['assets_bytes'] / 2**20:.1f} MiB ({len(assets['fonts'])} fonts, "
        f"{assets['prose_lines']} prose lines); {time.time() - t:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

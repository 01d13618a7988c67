"""The official TokenOCR path on a GPU, measured in one run (issue 16, point 4).

On a lent NVIDIA H200, as ONE device command (first, here: ``bash bench/gpu_check.sh wheels``, which
puts the packages the H200 image lacks under ``.whl/``; the checkpoint and the pages are made there)::

    run(command="bash bench/gpu_check.sh run --budget-s 300", carry=[".whl"], timeout_s=420)

(the script stops starting phases after ``--budget-s`` seconds; 420 s leaves the wheel install, the
ending, and device time for one rerun inside the session's 15 minutes). On the CPU, tiny, as
``tests/test_gpu_check.py`` runs it::

    python bench/gpu_check.py --tiny --device cpu --dtype float32 --out DIR

Every phase adds its figures to ``OUT/gpu_check.json`` when it ends, so a run cut short keeps what it
measured; a failing phase is recorded under ``errors`` and the next one runs. At the end a markdown
summary is printed and written to ``OUT/gpu_check.md``. The phases:

1. **checkpoint**: a random TokenOCR-2048 in the official on-disk layout (InternViT-300M-448px, the 4x
   upsampler, ``ocr_mlp`` to 2048, InternLM2's 92,553 x 2048 token table, config.json,
   tokenizer.model; bf16 like the released files), written by
   :mod:`tokensearch.tokenocr_model.random_checkpoint` and loaded by the unchanged loader. Random
   weights call about half of all cells "text"; a trained -seg checkpoint keeps its ink cells. So the
   space token's row and the last layer's bias are set by a linear probe on one generated page to keep
   about as many cells as that page has ink, everything else random: bytes per page, storing time and
   the FAISS index then have a realistic size.
2. **pages**: A4 image-only PDFs (the training synth's layouts, rasterised at 150 dpi), made in
   parallel while the checkpoint is built. A4 gets 2x3 = 6 tiles under the 12-tile rule; Letter 3x4.
3. **model**: ``encode_pages`` (tiling + GPU + copy to host) and the GPU part alone per batch size,
   with peak GPU memory; at the best one, the ViT/head chunking and the attention kernels (SDPA's
   backends; flash-attn if it imports).
4. **pipeline**: the indexer with the loaded model on a few pages per batch size, then
   ``tokensearch index DOCS --model tokenocr:CKPT --device cuda --dtype bfloat16 --batch-size BEST``
   in this process on all pages, with the seconds of each stage (rasterise in the reading thread;
   tiling, GPU, copy to host in the encoding thread; projection, feature blobs, vector count, SQL in
   the storing thread), which say what limits pages/s.
5. **storage**: bytes per page after the index codec.
6. **precision**: the per-cell cosine of the bf16 GPU features against float32 on the CPU, two pages.
7. **faiss**: query latency on the resulting index, FAISS on the CPU, FAISS on the GPU where faiss has
   GPUs (else said so), and an exact scan of the flat index's codes with torch on the GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import io
import json
import multiprocessing
import os
import platform
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections import defaultdict
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tokensearch.tokenocr_model.random_checkpoint import INTERNLM2_VOCAB, INTERNVIT_300M  # noqa: E402

TARGET_PAGES_PER_S = 20.0  # one H200, A4 pages, the default 12-tile rule (issue 16)
COS_GOAL = 0.999
DPI = 150  # TokenOCREncoder.dpi: the indexer rasterises PDF pages at this resolution
PAGE_PT = {"a4": (595.0, 842.0), "letter": (612.0, 792.0)}
TINY_VISION = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, patch_size=14, image_size=56
)
TINY_D = 288  # above the store's identity limit (256): the tiny run goes through the PCA codec too
TINY_VOCAB = 1000
INK_DARKNESS = 0.3  # a cell is ink when a pixel is this much darker than white (antialiased strokes count)
FAISS_K = 2048  # neighbours per query row for the raw FAISS comparison (faiss-gpu's largest k)
SENTENCES = [  # the random checkpoint's tokenizer is trained on these
    "Invoice total amount due 11/12/2020",
    "INV-2023-0042 paid in full",
    "Total: 42.50 EUR, tax 8.5%",
    "The committee reviewed the quarterly maintenance schedule",
    "Payment within thirty days to account",
    "Meeting minutes of the steering committee",
    "Container inspection and refrigerated storage",
    "token search finds words in scanned pages",
    "The quick brown fox jumps over the lazy dog.",
]


@dataclass(frozen=True)
class Plan:
    """Sizes of one run: the full TokenOCR-2048 on a GPU, or tiny widths for the CPU test."""

    vision: dict
    D: int
    vocab: int  # rows of the token table (the tokenizer's pieces first, the 9 special tokens last)
    ckpt_dtype: torch.dtype
    pages: int
    pages_per_doc: int
    sweep_pages: int  # pages per batch size in the model sweep
    batch_sizes: tuple[int, ...]  # of the model sweep
    pipeline_pages: int  # pages per batch size in the pipeline sweep
    pipeline_batch_sizes: tuple[int, ...]
    chunkings: tuple[tuple[int, int], ...]  # (vit_batch, head_batch) tried at the best batch size
    precision_pages: int
    queries: int  # per query size in the FAISS phase
    workers: int  # processes making pages


def make_plan(a: argparse.Namespace) -> Plan:
    def pick(value, default):
        return default if value is None else value

    if a.tiny:
        # a table larger than the tokenizer, special tokens last: the full run's layout, in small
        return Plan(
            TINY_VISION,
            TINY_D,
            TINY_VOCAB,
            torch.float32,
            pick(a.pages, 6),
            pick(a.pages_per_doc, 2),
            pick(a.sweep_pages, 2),
            pick(a.batch_sizes, (1, 2)),
            2,
            pick(a.pipeline_batch_sizes, (1, 2)),
            ((48, 4), (8, 2)),
            2,
            pick(a.queries, 3),
            pick(a.workers, 2),
        )
    return Plan(
        INTERNVIT_300M,
        2048,
        INTERNLM2_VOCAB,
        torch.bfloat16,
        pick(a.pages, 200),
        pick(a.pages_per_doc, 10),
        pick(a.sweep_pages, 32),
        pick(a.batch_sizes, (1, 2, 4, 8, 16, 32)),
        20,
        pick(a.pipeline_batch_sizes, (2, 4, 8, 16)),
        ((48, 4), (96, 8), (96, 16), (192, 16)),
        2,
        pick(a.queries, 10),
        pick(a.workers, min(16, os.cpu_count() or 1)),
    )


# ------------------------------------------------------------------------------------------------
# the report: JSON after every phase, markdown at the end
# ------------------------------------------------------------------------------------------------


class Report:
    """Figures by phase, written to ``out/gpu_check.json`` after each phase; phases run only while
    the time budget lasts, and an error in one is recorded without stopping the others."""

    def __init__(self, out: Path, budget_s: float, argv: list[str]) -> None:
        self.out = out
        self.t0 = time.perf_counter()
        self.budget_s = budget_s
        self.data: dict[str, Any] = {
            "script": "bench/gpu_check.py",
            "argv": argv,
            "budget_s": budget_s,
            "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "complete": False,
            "skipped": {},
            "errors": {},
            "phase_seconds": {},
        }

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def left(self) -> float:
        return self.budget_s - self.elapsed()

    def run(self, name: str, fn: Callable[[], Any], need_s: float = 0.0) -> Any:
        """``fn()`` if at least ``need_s`` of the budget is left, its figures stored under ``name`` (``fn``
        returns them, or a tuple of them and objects for later phases); None if skipped or failed."""
        self.data.setdefault(name, None)
        if self.left() < need_s:
            self.data["skipped"][name] = f"{self.left():.0f} s of the budget left, the phase needs ~{need_s:.0f} s"
            print(f"[gpu_check] skip {name}: {self.data['skipped'][name]}", flush=True)
            self.save()
            return None
        print(f"[gpu_check] {name} ({self.elapsed():.0f} s in)", flush=True)
        t = time.perf_counter()
        try:
            result = fn()
            self.data[name] = result[0] if isinstance(result, tuple) else result
            return result
        except (Exception, KeyboardInterrupt) as e:  # one device run must report every phase it can
            self.data["errors"][name] = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=8)}"
            print(f"[gpu_check] {name} FAILED: {type(e).__name__}: {e}", flush=True)
            return None
        finally:
            self.data["phase_seconds"][name] = round(time.perf_counter() - t, 2)
            self.save()

    def save(self) -> None:
        self.data["elapsed_s"] = round(self.elapsed(), 1)
        tmp = self.out / "gpu_check.json.tmp"
        tmp.write_text(json.dumps(self.data, indent=1, default=_json_default))
        os.replace(tmp, self.out / "gpu_check.json")


def _json_default(x: Any) -> Any:
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, (Path, torch.dtype)):
        return str(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


# ------------------------------------------------------------------------------------------------
# device helpers
# ------------------------------------------------------------------------------------------------


def is_cuda(device: str) -> bool:
    return device.startswith("cuda")


def sync(device: str) -> None:
    if is_cuda(device):
        torch.cuda.synchronize()


def reset_peak(device: str) -> None:
    if is_cuda(device):
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device: str) -> dict | None:
    if not is_cuda(device):
        return None
    return {
        "allocated_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
        "reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 2),
    }


def free_device_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else float("nan")


# ------------------------------------------------------------------------------------------------
# 1. environment
# ------------------------------------------------------------------------------------------------


def environment(device: str) -> dict:
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "machine": platform.machine(),
    }
    if is_cuda(device):
        p = torch.cuda.get_device_properties(torch.device(device))
        env |= {
            "gpu": p.name,
            "gpu_memory_gib": round(p.total_memory / 2**30, 1),
            "capability": f"{p.major}.{p.minor}",
            "cuda": torch.version.cuda,
            "multiprocessors": p.multi_processor_count,
            "sdpa_flash_enabled": torch.backends.cuda.flash_sdp_enabled(),
            "sdpa_cudnn_enabled": torch.backends.cuda.cudnn_sdp_enabled(),
        }
    try:
        import faiss

        env["faiss"] = faiss.__version__
        env["faiss_gpus"] = int(faiss.get_num_gpus()) if hasattr(faiss, "get_num_gpus") else 0
        env["faiss_omp_threads"] = int(faiss.omp_get_max_threads())
    except ImportError as e:
        env["faiss"] = f"absent: {e}"
    try:
        import flash_attn

        env["flash_attn"] = flash_attn.__version__
    except Exception as e:  # noqa: BLE001 - absent or built for another torch: either way not used
        env["flash_attn"] = f"absent: {type(e).__name__}: {e}"[:200]
    try:
        import pymupdf

        env["pymupdf"] = pymupdf.__version__
    except ImportError as e:
        env["pymupdf"] = f"absent: {e}"
    return env


# ------------------------------------------------------------------------------------------------
# 2. pages (worker processes) and 1. the checkpoint
# ------------------------------------------------------------------------------------------------


def make_document(path: str, n_pages: int, seed: int, page_pt: tuple[float, float], dpi: int) -> dict:
    """One scanned PDF (grey JPEG pages) of ``n_pages`` synth layouts fitted onto ``page_pt`` pages, in a
    worker process."""
    import pymupdf

    from tokensearch.samples import rasterise_pdf
    from tokensearch.tokenocr_model.mini_tokenizer import MiniTokenizer
    from tokensearch.tokenocr_model.mini_files import TOKENIZER_FILE, WEIGHTS_DIR
    from tokensearch.training.synth import DocumentSynth

    t = time.perf_counter()
    synth = DocumentSynth(MiniTokenizer.from_file(WEIGHTS_DIR / TOKENIZER_FILE), seed=seed)
    doc = pymupdf.open()
    while doc.page_count < n_pages:
        src = synth.compose()
        if src[0].rect.width <= src[0].rect.height:  # portrait layouts only (a landscape one would shrink)
            page = doc.new_page(width=page_pt[0], height=page_pt[1])
            page.show_pdf_page(page.rect, src, 0)
        src.close()
    images = rasterise_pdf(doc.tobytes(), dpi)
    doc.close()
    scan = pymupdf.open()  # as a scanner writes them: one grey JPEG per page, no text layer
    for img in images:
        buf = io.BytesIO()
        img.convert("L").save(buf, format="JPEG", quality=85)
        scan.new_page(width=page_pt[0], height=page_pt[1]).insert_image(
            pymupdf.Rect(0, 0, *page_pt), stream=buf.getvalue()
        )
    scan.save(path)
    scan.close()
    return {"path": path, "pages": n_pages, "seconds": time.perf_counter() - t}


def start_pages(
    plan: Plan, folder: Path, page_pt: tuple[float, float]
) -> tuple[ProcessPoolExecutor | None, list[Future]]:
    """Submit the documents to worker processes (forkserver: nothing of this process's threads or CUDA
    state is inherited); ``plan.workers == 0`` makes them here, one after the other."""
    folder.mkdir(parents=True, exist_ok=True)
    jobs = []
    left, i = plan.pages, 0
    while left > 0:
        n = min(plan.pages_per_doc, left)
        jobs.append((str(folder / f"doc-{i:03d}.pdf"), n, 1000 + i, page_pt, DPI))
        left -= n
        i += 1
    if plan.workers <= 0:
        futures = []
        for job in jobs:
            f: Future = Future()
            f.set_result(make_document(*job))
            futures.append(f)
        return None, futures
    pool = ProcessPoolExecutor(
        max_workers=min(plan.workers, len(jobs)), mp_context=multiprocessing.get_context("forkserver")
    )
    return pool, [pool.submit(make_document, *job) for job in jobs]


def read_images(docs: list[Path], n: int) -> list[Image.Image]:
    """The first ``n`` page images of ``docs`` as the indexer rasterises them."""
    from tokensearch.indexer.sources import DocumentReader

    out: list[Image.Image] = []
    for d in docs:
        with DocumentReader(d, 60_000_000) as r:
            for p in r.pages(DPI, use_text_layer=True):
                if p.image is None:
                    raise RuntimeError(f"{d} page {p.page_no} was read from a text layer; the pages must be images")
                out.append(p.image)
                if len(out) >= n:
                    return out
    return out


def ink_cells(tiles: list[Image.Image], cells: int) -> torch.Tensor:
    """(N, cells*cells) bool: the tiles' cells that hold ink (:data:`INK_DARKNESS`)."""
    gray = torch.from_numpy(np.stack([np.asarray(t.convert("L"), dtype=np.float32) / 255.0 for t in tiles]))
    dark = F.adaptive_max_pool2d((1.0 - gray)[:, None], cells)[:, 0]  # (N, cells, cells)
    return (dark > INK_DARKNESS).flatten(1)


def ink_fraction(image: Image.Image, grid: tuple[int, int]) -> float:
    """Fraction of the stored grid's cells (``grid`` = (rows, cols)) of the page that hold ink."""
    gray = torch.from_numpy(np.asarray(image.convert("L"), dtype=np.float32) / 255.0)
    dark = F.adaptive_max_pool2d((1.0 - gray)[None, None], grid)[0, 0]
    return float((dark > INK_DARKNESS).float().mean())


def calibrate_text(
    sd: dict[str, torch.Tensor], raw_cfg: dict, folder: Path, page: Image.Image, device: str, cell_pool: int = 2
) -> dict:
    """Set the space token's row and ``ocr_mlp.3.bias`` so that the cells the model calls text are
    about the ink cells of ``page`` (a linear probe on the random features; nothing else changes).

    A cell is text when ``cos(f, e_space) <= 0`` (``TokenOCREncoder``: sigmoid(-10 cos) >= 0.5) with
    ``f = W3 g + b3``, ``g`` the hidden layer of ``ocr_mlp``. With ``d`` = mean(g | paper) - mean(g | ink),
    ``u = W3^-T d / |W3^-T d|`` gives ``<W3 g, u> = <g, d> / |W3^-T d|``; the bias along ``u`` then puts
    the threshold on ``<g, d>`` where the stored cells (``cell_pool`` x ``cell_pool`` blocks, text if any
    of their cells is) are as many as the blocks holding ink."""
    from tokensearch.tokenocr_model import tiling
    from tokensearch.tokenocr_model.devices import autocast
    from tokensearch.tokenocr_model.sp_tokenizer import InternLM2Tokenizer
    from tokensearch.tokenocr_model.tokenocr import TokenOCR, TokenOCRConfig

    cfg = TokenOCRConfig.from_json(raw_cfg, upsample=True)
    with torch.device("meta"):
        model = TokenOCR(cfg)
    model.load_state_dict({k: sd[k] for k in model.state_dict()}, strict=True, assign=True)
    dev = torch.device(device)
    dtype = next(model.parameters()).dtype if dev.type == "cuda" else torch.float32  # bf16 is emulated on CPUs
    model = model.to(dev, dtype).eval()
    tiles, _ = tiling.dynamic_preprocess(page, 1, cfg.max_dynamic_patch, cfg.tile_size, use_thumbnail=False)
    x = torch.from_numpy(tiling.normalize_tiles(tiles)).to(dev, dtype)
    with torch.inference_mode(), autocast(dev, dtype):
        h = model.vision_model(x, cfg.n_layers_used)[:, 1:]  # (B, g*g, C)
        B, N, C = h.shape
        g = int(round(N**0.5))
        z = model.upsample(h.transpose(1, 2).reshape(B, C, g, g)).flatten(2).transpose(1, 2)  # (B, 16 g*g, C)
        hidden = model.ocr_mlp[2](model.ocr_mlp[1](model.ocr_mlp[0](z)))  # (B, cells, D): g of the docstring
    hidden = hidden.float().flatten(0, 1).cpu().double()  # (B*cells, D)
    del model, x, h, z
    free_device_memory()
    c = cfg.cells_per_tile
    ink = ink_cells(tiles, c).flatten()  # (B*cells,)
    if not 0 < int(ink.sum()) < len(ink):
        raise RuntimeError(f"calibration page has ink fraction {float(ink.float().mean())}; need ink and paper")
    d = hidden[~ink].mean(0) - hidden[ink].mean(0)  # (D,)
    w3 = sd["ocr_mlp.3.weight"].double()  # (D_out, D_in)
    u = torch.linalg.solve(w3.T, d)
    lam = 1.0 / float(u.norm())
    u = u * lam
    s = (hidden @ d).view(B, 1, c, c)  # <g, d> per cell
    s_block = -F.max_pool2d(-s, cell_pool).flatten()  # a block is text if its lowest cell is
    ink_block = F.max_pool2d(ink.view(B, 1, c, c).double(), cell_pool).flatten() > 0
    frac = float(ink_block.double().mean())
    tau = float(torch.quantile(s_block, frac))
    b3 = sd["ocr_mlp.3.bias"].double()
    b3 = b3 - (b3 @ u) * u - lam * tau * u  # its component along u: -lam * tau
    sd["ocr_mlp.3.bias"] = b3.to(sd["ocr_mlp.3.bias"].dtype)
    table_key = "tok_embeddings.weight"
    space_id = InternLM2Tokenizer.from_checkpoint(folder).space_id
    row_norm = float(sd[table_key][:64].float().norm(dim=1).median())
    sd[table_key][space_id] = (u * row_norm).to(sd[table_key].dtype)
    kept = s_block <= tau
    return {
        "cell_pool": cell_pool,
        "ink_fraction_cells": round(float(ink.double().mean()), 4),
        "ink_fraction_blocks": round(frac, 4),
        "kept_fraction_blocks": round(float(kept.double().mean()), 4),
        "probe_precision": round(float((kept & ink_block).sum() / max(int(kept.sum()), 1)), 4),
        "probe_recall": round(float((kept & ink_block).sum() / max(int(ink_block.sum()), 1)), 4),
        "tiles": B,
        "space_id": space_id,
    }


def build_checkpoint(plan: Plan, folder: Path, first_doc: Future, device: str, calibrate: bool) -> dict:
    """The random checkpoint (text mask calibrated on the first generated page unless ``calibrate`` is off)."""
    from tokensearch.tokenocr_model.random_checkpoint import make_checkpoint, official_config

    info: dict[str, Any] = {}

    def edit(sd: dict[str, torch.Tensor]) -> None:
        table = sd["tok_embeddings.weight"]
        info["params_vision"] = sum(v.numel() for k, v in sd.items() if k.startswith("vision_model."))
        info["params_head"] = sum(v.numel() for k, v in sd.items() if k.startswith(("upsample.", "ocr_mlp.")))
        info["table_shape"] = list(table.shape)
        info["random_weights_s"] = round(time.perf_counter() - t, 2)
        if calibrate:
            t_wait = time.perf_counter()
            page = read_images([Path(first_doc.result()["path"])], 1)[0]
            info["calibration_waited_for_page_s"] = round(time.perf_counter() - t_wait, 2)
            raw_cfg = official_config(plan.vision, plan.D, table.shape[0])  # what make_checkpoint writes
            info["text_calibration"] = calibrate_text(sd, raw_cfg, folder, page, device)

    t = time.perf_counter()
    make_checkpoint(
        folder, plan.vision, plan.D, SENTENCES, vocab=plan.vocab, dtype=plan.ckpt_dtype, state_dict_edit=edit
    )
    info |= {
        "path": str(folder),
        "build_s": round(time.perf_counter() - t, 2),
        "files": {f.name: f.stat().st_size for f in sorted(folder.iterdir())},
        "dtype": str(plan.ckpt_dtype),
        "vision": plan.vision,
        "D": plan.D,
    }
    return info


# ------------------------------------------------------------------------------------------------
# 3. the model alone
# ------------------------------------------------------------------------------------------------


def page_tiles(enc, images: list[Image.Image]) -> list[torch.Tensor]:
    """Each page's normalised tiles (n, 3, S, S), as ``encode_pages`` makes them."""
    from tokensearch.tokenocr_model import tiling

    out = []
    for img in images:
        tiles, _ = tiling.dynamic_preprocess(img, 1, enc.max_tiles, enc.cfg.tile_size, use_thumbnail=False)
        out.append(torch.from_numpy(tiling.normalize_tiles(tiles)))
    return out


def batches_of(tiles: list[torch.Tensor], b: int, pin: bool) -> list[torch.Tensor]:
    out = [torch.cat(tiles[i : i + b]) for i in range(0, len(tiles), b)]
    return [x.pin_memory() for x in out] if pin else out


def gpu_pages_per_s(enc, batches: list[torch.Tensor], n_pages: int, device: str, repeat: int = 1) -> float:
    """Pages/s of ``encode_tiles`` alone (host-to-device copy of the tiles included, features left there)."""
    enc.encode_tiles(batches[0])  # warm-up (kernel choice, allocator)
    sync(device)
    t = time.perf_counter()
    for _ in range(repeat):
        for x in batches:
            enc.encode_tiles(x)
    sync(device)
    return repeat * n_pages / (time.perf_counter() - t)


def model_phase(plan: Plan, enc, images: list[Image.Image], device: str) -> dict:
    tiles = page_tiles(enc, images)
    n = len(images)
    enc.encode_pages(images[:1])  # warm-up
    rows = []
    for b in plan.batch_sizes:
        reset_peak(device)
        sync(device)
        t = time.perf_counter()
        for i in range(0, n, b):
            enc.encode_pages(images[i : i + b])
        sync(device)
        pps = n / (time.perf_counter() - t)
        row = {"batch_pages": b, "encode_pages_pages_per_s": round(pps, 2)}
        row["gpu_pages_per_s"] = round(gpu_pages_per_s(enc, batches_of(tiles, b, is_cuda(device)), n, device), 2)
        row["peak"] = peak_gib(device)
        rows.append(row)
        print(
            f"[gpu_check]   batch {b}: encode_pages {pps:.1f} pages/s, GPU alone {row['gpu_pages_per_s']} pages/s",
            flush=True,
        )
    best = max(rows, key=lambda r: r["encode_pages_pages_per_s"])
    b = best["batch_pages"]
    batches = batches_of(tiles, b, is_cuda(device))
    chunk = []
    default = (enc.vit_batch, enc.head_batch)
    for vit, head in plan.chunkings:
        enc.vit_batch, enc.head_batch = vit, head
        try:
            reset_peak(device)
            chunk.append(
                {
                    "vit_batch": vit,
                    "head_batch": head,
                    "gpu_pages_per_s": round(gpu_pages_per_s(enc, batches, n, device), 2),
                    "peak": peak_gib(device),
                }
            )
        except torch.cuda.OutOfMemoryError as e:
            chunk.append({"vit_batch": vit, "head_batch": head, "error": str(e)[:200]})
            free_device_memory()
        finally:
            enc.vit_batch, enc.head_batch = default
    return {
        "pages": n,
        "tiles_per_page": round(sum(len(t) for t in tiles) / n, 2),
        "grid": list(enc.grid_shape(*images[0].size)),
        "sweep": rows,
        "best_batch_pages": b,
        "chunking_at_best": chunk,
        "default_chunking": list(default),
        "attention_at_best": attention_variants(enc, batches, n, device),
    }


@contextlib.contextmanager
def flash_attn_as_sdpa():
    """``F.scaled_dot_product_attention`` served by flash-attn's kernel (layout (B, N, heads, hd))."""
    from flash_attn import flash_attn_func

    real = F.scaled_dot_product_attention

    def sdpa(q, k, v, *args, **kwargs):
        return flash_attn_func(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)

    torch.nn.functional.scaled_dot_product_attention = sdpa
    try:
        yield
    finally:
        torch.nn.functional.scaled_dot_product_attention = real


def attention_variants(enc, batches: list[torch.Tensor], n: int, device: str) -> list[dict]:
    """GPU pages/s with each attention kernel, and the largest feature difference from SDPA's default."""
    if not is_cuda(device):
        return [{"kernel": "sdpa (default)", "skipped": "not a CUDA device"}]
    from torch.nn.attention import SDPBackend, sdpa_kernel

    variants: list[tuple[str, Callable[[], contextlib.AbstractContextManager]]] = [
        ("sdpa (default)", contextlib.nullcontext),
        ("sdpa flash", lambda: sdpa_kernel(SDPBackend.FLASH_ATTENTION)),
        ("sdpa cudnn", lambda: sdpa_kernel(SDPBackend.CUDNN_ATTENTION)),
        ("sdpa mem-efficient", lambda: sdpa_kernel(SDPBackend.EFFICIENT_ATTENTION)),
    ]
    try:
        import flash_attn  # noqa: F401

        variants.append(("flash-attn " + flash_attn.__version__, flash_attn_as_sdpa))
    except Exception as e:  # noqa: BLE001
        variants.append((f"flash-attn (absent: {type(e).__name__})", None))
    x = batches[0][:4]
    ref = enc.encode_tiles(x)[0].float()
    out = []
    for name, ctx in variants:
        if ctx is None:
            out.append({"kernel": name, "skipped": "does not import here"})
            continue
        try:
            with ctx():
                feats = enc.encode_tiles(x)[0].float()
                cos = float((feats * ref).sum(-1).min())  # unit vectors
                pps = gpu_pages_per_s(enc, batches, n, device)
            out.append({"kernel": name, "gpu_pages_per_s": round(pps, 2), "min_cos_vs_default": round(cos, 6)})
        except Exception as e:  # noqa: BLE001 - a kernel that cannot run this shape says why
            out.append({"kernel": name, "error": f"{type(e).__name__}: {e}"[:300]})
    return out


# ------------------------------------------------------------------------------------------------
# 4. the pipeline
# ------------------------------------------------------------------------------------------------


def link_folder(docs: list[Path], folder: Path) -> Path:
    """A folder holding (hard links to) ``docs``, to index a subset."""
    folder.mkdir(parents=True, exist_ok=True)
    for d in docs:
        target = folder / d.name
        try:
            os.link(d, target)
        except OSError:
            shutil.copyfile(d, target)
    return folder


def pipeline_sweep(
    plan: Plan, enc, spec: str, docs: list[Path], work: Path, device: str, dtype: str, rep: Report, per_page_s: float
) -> dict:
    """The indexer (the CLI's Engine with the loaded model) on the first documents, per batch size.

    Each batch size indexes into a copy of one home that already holds another document, so the
    codec (a PCA fitted on the first cells a fresh index sees, seconds on one core) is not timed again
    in every row."""
    from tokensearch.engine import Engine
    from tokensearch.settings import Settings

    def index(folder: Path, home: Path, b: int):
        with Engine(Settings(home=home, model=spec, device=device, dtype=dtype, batch_size=b), encoder=enc) as eng:
            return eng.index(folder)

    n_docs = max(1, -(-plan.pipeline_pages // plan.pages_per_doc))
    folder = link_folder(docs[:n_docs], work / "sweep-docs")
    primed = work / "sweep-primed"
    t = time.perf_counter()
    index(link_folder(docs[n_docs : n_docs + 1], work / "sweep-prime-docs"), primed, plan.pipeline_batch_sizes[0])
    rows, prime_s = [], time.perf_counter() - t
    for b in plan.pipeline_batch_sizes:
        need = 5 + 2 * plan.pipeline_pages * per_page_s
        if rep.left() < need + 60:  # keep a minute for the main run
            rows.append({"batch_size": b, "skipped": f"budget: {rep.left():.0f} s left"})
            continue
        home = work / f"sweep-home-{b}"
        shutil.copytree(primed, home)
        reset_peak(device)
        r = index(folder, home, b)
        rows.append(
            {
                "batch_size": b,
                "pages": r.pages,
                "seconds": round(r.seconds, 2),
                "pages_per_s": round(r.pages_per_s, 2),
                "peak": peak_gib(device),
            }
        )
        print(f"[gpu_check]   batch {b}: {r.pages} pages, {r.pages_per_s:.2f} pages/s", flush=True)
        shutil.rmtree(home, ignore_errors=True)
    done = [r for r in rows if "pages_per_s" in r]
    return {
        "documents": n_docs,
        "prime_s": round(prime_s, 2),
        "rows": rows,
        "best_batch_size": max(done, key=lambda r: r["pages_per_s"])["batch_size"] if done else None,
    }


class StageClock:
    """Seconds and calls per named stage, by wrapping functions and methods for one run (then restored).

    Every name wrapped must exist: one that was renamed is listed in ``missing`` (the CPU test fails on
    it) and its stage is simply not timed, so a device run still reports the others."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.missing: list[str] = []
        self._undo: list[tuple[Any, str, Any]] = []
        self._lock = threading.Lock()

    def add(self, stage: str, dt: float) -> None:
        with self._lock:
            self.seconds[stage] += dt
            self.calls[stage] += 1

    def wrap(
        self,
        owner: Any,
        name: str,
        stage: str | Callable[..., str],
        *,
        sync_after: bool = False,
        generator: bool = False,
        keep: Callable[[Any], None] | None = None,
    ) -> None:
        real = getattr(owner, name, None)
        if real is None:
            self.missing.append(f"{getattr(owner, '__name__', owner)}.{name}")
            return
        clock = self

        if generator:

            @functools.wraps(real)
            def wrapper(*args, **kwargs):
                at = stage(*args, **kwargs) if callable(stage) else stage
                it = real(*args, **kwargs)
                try:
                    while True:
                        t = time.perf_counter()
                        try:
                            item = next(it)
                        except StopIteration:
                            clock.add(at, time.perf_counter() - t)
                            return
                        clock.add(at, time.perf_counter() - t)
                        yield item
                finally:
                    it.close()
        else:

            @functools.wraps(real)
            def wrapper(*args, **kwargs):
                at = stage(*args, **kwargs) if callable(stage) else stage
                t = time.perf_counter()
                try:
                    result = real(*args, **kwargs)
                    if sync_after:
                        sync(clock.device)
                    if keep is not None:
                        keep(result)
                    return result
                finally:
                    clock.add(at, time.perf_counter() - t)

        setattr(owner, name, wrapper)
        self._undo.append((owner, name, real))

    def restore(self) -> None:
        for owner, name, real in reversed(self._undo):
            setattr(owner, name, real)
        self._undo.clear()


def instrument(clock: StageClock, captured: dict) -> None:
    """The stages of one ``tokensearch index`` run (see the module docstring)."""
    import tokensearch.storage.store as store_mod
    import tokensearch.tokenocr_model as model_pkg
    from tokensearch.indexer.pipeline import FolderIndexer
    from tokensearch.indexer.readahead import ReadAhead
    from tokensearch.indexer.sources import DocumentReader
    from tokensearch.storage.codec import Codec
    from tokensearch.storage.features import FeatureStore
    from tokensearch.storage.keeper import VectorKeeper
    from tokensearch.tokenocr_model import tiling
    from tokensearch.tokenocr_model.tokenocr import TokenOCREncoder

    clock.wrap(model_pkg, "create_encoder", "load model", keep=lambda enc: captured.__setitem__("encoder", enc))
    clock.wrap(FolderIndexer, "index", "index pass", keep=lambda r: captured.__setitem__("report", r))
    # reading thread, then the encoding thread (ReadAhead's two)
    clock.wrap(ReadAhead, "_read_all", "reading thread")
    clock.wrap(DocumentReader, "pages", "rasterise", generator=True)
    clock.wrap(
        ReadAhead,
        "_put",
        lambda ahead, q, item: f"{'reading' if q is ahead._read_queue else 'encoding'} waits (queue full)",
    )
    clock.wrap(ReadAhead, "_take", "encoding waits (no page read)")
    clock.wrap(ReadAhead, "_produce", "encoding thread")
    clock.wrap(TokenOCREncoder, "encode_pages", "encode_pages")
    clock.wrap(tiling, "dynamic_preprocess", "tiling")
    clock.wrap(tiling, "normalize_tiles", "tiling")
    clock.wrap(TokenOCREncoder, "encode_tiles", "GPU", sync_after=True)
    # storing thread (the caller's)
    clock.wrap(ReadAhead, "_get", "store waits (queue empty)")
    clock.wrap(store_mod.Store, "write_document", "write_document")
    clock.wrap(store_mod.Store, "_fit_codec", "PCA fit")
    clock.wrap(Codec, "apply", "projection")
    clock.wrap(store_mod, "encode_page", "feature blobs")
    clock.wrap(FeatureStore, "append", "feature blobs")
    clock.wrap(FeatureStore, "decode", "vector count")
    clock.wrap(store_mod, "index_vectors", "vector count")
    clock.wrap(VectorKeeper, "committed", "vector index update")


def stage_summary(clock: StageClock, pages: int, seconds: float, gpu_only_pps: float | None) -> dict:
    """Per-page milliseconds of each thread and stage, and which thread bounds the pass."""
    s = clock.seconds
    ms = lambda v: round(1000.0 * v / max(pages, 1), 1)  # noqa: E731
    rd = s["reading thread"] - s["reading waits (queue full)"]
    ra = s["encoding thread"] - s["encoding waits (queue full)"] - s["encoding waits (no page read)"]
    st = s["write_document"] - s["store waits (queue empty)"]
    rd_parts = {"rasterise": s["rasterise"], "open + rest": rd - s["rasterise"]}
    ra_parts = {
        "tiling": s["tiling"],
        "GPU": s["GPU"],
        "copy to host + stitch": s["encode_pages"] - s["tiling"] - s["GPU"],
    }
    ra_parts["cell selection + rest"] = ra - sum(ra_parts.values())
    st_parts = {
        "projection": s["projection"],
        "PCA fit": s["PCA fit"],
        "feature blobs": s["feature blobs"],
        "vector count": s["vector count"],
        "vector index update": s["vector index update"],
    }
    st_parts["SQL + rest"] = st - sum(st_parts.values())
    wall = ms(seconds)
    threads = {"reading thread": (rd_parts, rd), "encoding thread": (ra_parts, ra), "storing thread": (st_parts, st)}
    bound = max(threads, key=lambda k: threads[k][1])
    parts, busy = threads[bound]
    top = sorted(parts.items(), key=lambda kv: -kv[1])
    others = ", ".join(f"the {k} {ms(v[1])}" for k, v in threads.items() if k != bound)
    text = (
        f"{pages / seconds:.3g} pages/s ({wall} ms/page): bounded by the {bound}, busy {ms(busy)} ms/page "
        f"({', '.join(f'{k} {ms(v)}' for k, v in top if ms(v) >= 0.5)}); busy ms/page: {others}"
    )
    if gpu_only_pps:
        text += f"; the GPU alone does {gpu_only_pps:.1f} pages/s ({1000 / gpu_only_pps:.1f} ms/page)"
    return {
        "ms_per_page": {
            "wall": wall,
            "reading thread (busy)": ms(rd),
            **{k: ms(v) for k, v in rd_parts.items()},
            "encoding thread (busy)": ms(ra),
            **{k: ms(v) for k, v in ra_parts.items()},
            "storing thread (busy)": ms(st),
            **{k: ms(v) for k, v in st_parts.items()},
        },
        "seconds": {k: round(v, 3) for k, v in s.items()},
        "calls": dict(clock.calls),
        "bound_by": bound,
        "limit": text,
        "not_timed": clock.missing,
    }


def index_run(
    plan: Plan,
    spec: str,
    docs: list[Path],
    work: Path,
    device: str,
    dtype: str,
    batch: int,
    rep: Report,
    per_page_s: float | None,
    reserve_s: float,
    gpu_only_pps: float | None,
) -> tuple[dict, Any]:
    """``tokensearch index`` on the pages (fewer documents if the budget cannot take them all), in this
    process with stage timers; a SIGINT at the budget's end stops it as Ctrl-C would (committed pages kept)."""
    from tokensearch import cli

    n_docs = len(docs)
    if per_page_s:  # what fits: load (~15 s) + pages at the sweep's speed, leaving reserve_s for the rest
        fit = int((rep.left() - reserve_s - 15) / (per_page_s * 1.2) // plan.pages_per_doc)
        n_docs = max(1, min(n_docs, fit))
    folder = link_folder(docs[:n_docs], work / "index-docs")
    home = work / "home"
    argv = [
        "index",
        str(folder),
        "--home",
        str(home),
        "--model",
        spec,
        "--device",
        device,
        "--dtype",
        dtype,
        "--batch-size",
        str(batch),
        "--quiet",
    ]
    clock, captured = StageClock(device), {}
    instrument(clock, captured)
    deadline = max(5.0, rep.left() - reserve_s)
    timer = threading.Timer(deadline, lambda: os.kill(os.getpid(), signal.SIGINT))
    out = io.StringIO()
    reset_peak(device)
    t = time.perf_counter()
    try:
        timer.start()
        with contextlib.redirect_stdout(out):
            code = cli.main(argv)
    finally:
        timer.cancel()
        clock.restore()
    wall = time.perf_counter() - t
    print(out.getvalue(), end="", flush=True)
    report = captured.get("report")
    from tokensearch.storage import Store

    with Store.open(home) as store:
        pages = store.stats().pages
    seconds = report.seconds if report is not None else wall - clock.seconds["load model"]
    result = {
        "command": "tokensearch " + " ".join(argv),
        "exit_code": code,
        "stdout": out.getvalue().strip(),
        "documents": n_docs,
        "pages": pages,
        "pages_capped_by_budget": n_docs < len(docs),
        "interrupted_at_budget": code == 130,
        "batch_size": batch,
        "seconds": round(seconds, 2),
        "pages_per_s": round(pages / seconds, 2) if seconds > 0 else 0.0,
        "model_load_s": round(clock.seconds["load model"], 2),
        "wall_s": round(wall, 2),
        "peak": peak_gib(device),
        "stages": stage_summary(clock, pages, seconds, gpu_only_pps),
        "home": str(home),
    }
    result["target_pages_per_s"] = TARGET_PAGES_PER_S
    result["target_met"] = result["pages_per_s"] >= TARGET_PAGES_PER_S
    return result, captured.get("encoder")  # the CLI's model serves the later phases


# ------------------------------------------------------------------------------------------------
# 5. storage, 6. precision, 7. FAISS
# ------------------------------------------------------------------------------------------------


def timed_ms(fn: Callable[[], Any], n: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(1000.0 * (time.perf_counter() - t))
    return out


def latency(ms: list[float]) -> dict:
    return {"p50_ms": round(pct(ms, 50), 3), "p95_ms": round(pct(ms, 95), 3), "n": len(ms)}


def faiss_phase(plan: Plan, enc, home: Path, device: str) -> dict:
    import faiss

    from tokensearch.search.searcher import SearchOptions
    from tokensearch.storage import Store

    cells_per_token = SearchOptions(threshold=0.0).cells_per_token
    res: dict[str, Any] = {
        "k_faiss": FAISS_K,
        "k_search_path": cells_per_token,
        "faiss": faiss.__version__,
        "faiss_omp_threads": int(faiss.omp_get_max_threads()),
    }
    with Store.open(home) as store:
        t = time.perf_counter()
        vi = store.vectors.current()
        res["load_or_build_s"] = round(time.perf_counter() - t, 2)
        if vi is None:
            raise RuntimeError("the index holds no vectors")
        t = time.perf_counter()
        store.persist()
        res["snapshot_s"] = round(time.perf_counter() - t, 2)
        res |= {"index_type": vi.describe(), "ntotal": vi.ntotal, "dim": vi.dim}
        rng = np.random.default_rng(0)
        pool = np.arange(3, enc.tokenizer.n_pieces)
        k = min(FAISS_K, vi.ntotal)
        gpu_index, gpu_note = None, None
        if is_cuda(device) and getattr(faiss, "get_num_gpus", lambda: 0)() > 0:
            try:
                gpu_res = faiss.StandardGpuResources()
                try:
                    gpu_index = faiss.index_cpu_to_gpu(gpu_res, 0, vi.index)
                    gpu_note = "faiss.index_cpu_to_gpu of the index itself"
                except Exception as e:  # noqa: BLE001 - e.g. a code type faiss-gpu lacks: flat fp16 instead
                    codes = vi._flat_codes()
                    if codes is None:
                        raise
                    cfg = faiss.GpuIndexFlatConfig()
                    cfg.useFloat16 = True
                    gpu_index = faiss.GpuIndexFlatIP(gpu_res, vi.dim, cfg)
                    gpu_index.add(np.asarray(codes, dtype=np.float32))
                    gpu_note = f"GpuIndexFlatIP (fp16) of the same vectors; index_cpu_to_gpu: {e}"[:300]
            except Exception as e:  # noqa: BLE001
                gpu_note = f"faiss GPU failed: {type(e).__name__}: {e}"[:300]
        elif is_cuda(device):
            gpu_note = (
                f"faiss {faiss.__version__} here has no GPU support (faiss-gpu is not installed on this "
                "machine): GPU FAISS not measured; see torch_gpu_scan"
            )
        else:
            gpu_note = "not a CUDA device"
        res["faiss_gpu_note"] = gpu_note
        codes_gpu = None
        if is_cuda(device) and vi._flat_codes() is not None:
            codes_gpu = torch.from_numpy(np.array(vi._flat_codes())).to(device)  # (n, d) float16
        rows_out = []
        for rows in (1, 4, 8):
            qs = [
                store.project_queries(enc.token_vectors(rng.choice(pool, rows).tolist())) for _ in range(plan.queries)
            ]
            it = iter(range(10**9))

            def nxt():
                return qs[next(it) % len(qs)]

            row: dict[str, Any] = {"query_rows": rows}
            row["faiss_cpu"] = latency(timed_ms(lambda: vi.index.search(nxt(), k), plan.queries))
            row["search_path_cpu"] = latency(
                timed_ms(lambda: store.search_cells_at(nxt(), cells_per_token), plan.queries)
            )
            if gpu_index is not None:
                row["faiss_gpu"] = latency(timed_ms(lambda: gpu_index.search(nxt(), k), plan.queries))
            if codes_gpu is not None:

                def scan():
                    q = torch.from_numpy(nxt()).to(device, torch.float16)
                    s, i = torch.topk(q @ codes_gpu.T, k, dim=1)  # (rows, k)
                    return s.float().cpu(), i.cpu()

                row["torch_gpu_scan"] = latency(timed_ms(scan, plan.queries))
            rows_out.append(row)
        res["latency"] = rows_out
        del codes_gpu, gpu_index
    free_device_memory()
    return res


def storage_phase(home: Path, grid_cells: int, D: int, ink_fraction: float | None) -> dict:
    from tokensearch.storage import Store

    with Store.open(home) as store:
        st = store.stats()
    pages = max(st.pages, 1)
    kept = st.feature_cells / pages
    per_cell = (st.feature_bytes + st.vector_bytes) / max(st.feature_cells, 1)  # the rest is per page
    fixed = (st.index_bytes - st.feature_bytes - st.vector_bytes) / pages
    out = {
        "pages": st.pages,
        "bytes_per_page": round(st.bytes_per_page),
        "codec": st.codec,
        "dim": st.dim,
        "vector_index_type": st.vector_index_type,
        "vectors": st.vectors,
        "feature_bytes_per_page": round(st.feature_bytes / pages),
        "vector_bytes_per_page": round(st.vector_bytes / pages),
        "database_bytes_per_page": round(st.database_bytes / pages),
        "kept_cells_per_page": round(kept),
        "grid_cells_per_page": grid_cells,
        "kept_fraction": round(kept / grid_cells, 4) if grid_cells else None,
        "feature_and_vector_bytes_per_kept_cell": round(per_cell, 1),
        "model_output_bytes_per_page_fp16": grid_cells * D * 2,
    }
    if ink_fraction is not None:
        out["ink_fraction"] = round(ink_fraction, 4)
        out["bytes_per_page_at_ink_fraction"] = round(fixed + per_cell * ink_fraction * grid_cells)
    return out


def precision_phase(spec: str, enc, images: list[Image.Image]) -> dict:
    """Per-cell cosine of ``enc``'s features (the run's device and dtype) against float32 on the CPU."""
    from tokensearch.tokenocr_model import create_encoder

    t = time.perf_counter()
    test = enc.encode_pages(images)
    t_dev = time.perf_counter() - t
    t = time.perf_counter()
    ref_enc = create_encoder(spec, "cpu", "float32")
    t_load = time.perf_counter() - t
    t = time.perf_counter()
    ref = ref_enc.encode_pages(images)
    t_cpu = time.perf_counter() - t
    del ref_enc
    cos_all, cos_kept, agree = [], [], []
    for a, b in zip(test, ref):
        fa = torch.from_numpy(a.features).float().flatten(0, 1)
        fb = torch.from_numpy(b.features).float().flatten(0, 1)
        c = F.cosine_similarity(fa, fb, dim=1)
        kept = torch.from_numpy(b.text).flatten() >= 0.5
        cos_all.append(c)
        cos_kept.append(c[kept])
        agree.append(((torch.from_numpy(a.text).flatten() >= 0.5) == kept).float())
    c, ck, ag = torch.cat(cos_all), torch.cat(cos_kept), torch.cat(agree)
    summary = lambda x: (
        {
            "min": round(float(x.min()), 6),
            "p0.1": round(float(torch.quantile(x, 0.001)), 6),  # noqa: E731
            "mean": round(float(x.mean()), 6),
            "frac_ge_goal": round(float((x >= COS_GOAL).float().mean()), 5),
            "cells": int(x.numel()),
        }
        if x.numel()
        else {"cells": 0}
    )
    return {
        "pages": len(images),
        "device_dtype": f"{enc.device} {enc.dtype}",
        "goal": COS_GOAL,
        "all_cells": summary(c),
        "kept_cells": summary(ck),
        "text_mask_agreement": round(float(ag.mean()), 5),
        "goal_met_min": bool(c.min() >= COS_GOAL),
        "goal_met_mean": bool(c.mean() >= COS_GOAL),
        "seconds": {"device": round(t_dev, 2), "cpu_load": round(t_load, 2), "cpu_fp32": round(t_cpu, 2)},
    }


# ------------------------------------------------------------------------------------------------
# markdown summary
# ------------------------------------------------------------------------------------------------


def markdown(d: dict) -> str:
    env, ck, pg, mo, pl, ix, fa, stg, pr = (
        d.get(k) or {}
        for k in (
            "environment",
            "checkpoint",
            "pages",
            "model",
            "pipeline_sweep",
            "index_run",
            "faiss",
            "storage",
            "precision",
        )
    )
    dash = "—"

    def g(x, key, fmt="{}"):
        v = x.get(key) if isinstance(x, dict) else None
        return fmt.format(v) if v is not None else dash

    lines = [
        f"## GPU check ({d.get('started_utc', '')}): {env.get('gpu', 'no GPU')}, torch {env.get('torch')}, "
        f"faiss {env.get('faiss')}, flash-attn {str(env.get('flash_attn'))[:40]}",
        "",
    ]
    lines += [
        f"Checkpoint: vision {ck.get('vision', {}).get('hidden_size', dash)} wide x "
        f"{ck.get('vision', {}).get('num_hidden_layers', dash)} layers, D = {ck.get('D', dash)}, table "
        f"{ck.get('table_shape', dash)}, {ck.get('dtype', dash)}; pages: {pg.get('pages', dash)} "
        f"({pg.get('page_size', dash)}, {mo.get('tiles_per_page', dash)} tiles, grid {mo.get('grid', dash)} "
        f"cells, ink {pg.get('ink_fraction', dash)})",
        "",
    ]
    best = next((r for r in mo.get("sweep", []) if r["batch_pages"] == mo.get("best_batch_pages")), {})
    cpu_faiss = gpu_faiss = scan = dash
    for r in fa.get("latency", []):
        if r["query_rows"] == 8:
            cpu_faiss = g(r.get("faiss_cpu"), "p50_ms", "{:.2f} ms")
            gpu_faiss = (
                g(r.get("faiss_gpu"), "p50_ms", "{:.2f} ms")
                if "faiss_gpu" in r
                else f"not measured: {str(fa.get('faiss_gpu_note', ''))[:60]}"
            )
            scan = g(r.get("torch_gpu_scan"), "p50_ms", "{:.2f} ms")
    peak = ix.get("peak") or {}
    pa, pk = pr.get("all_cells", {}), pr.get("kept_cells", {})
    lines += [
        "| figure | value | goal |",
        "|---|---|---|",
        f"| `tokensearch index` pages/s ({g(ix, 'pages')} pages, batch {g(ix, 'batch_size')}) | "
        f"**{g(ix, 'pages_per_s')}** | >= {TARGET_PAGES_PER_S:g} |",
        f"| encode_pages alone, pages/s (batch {g(mo, 'best_batch_pages')}) | "
        f"{g(best, 'encode_pages_pages_per_s')} | |",
        f"| GPU alone (encode_tiles), pages/s | {g(best, 'gpu_pages_per_s')} | |",
        f"| peak GPU memory in the index run, GiB (allocated / reserved) | "
        f"{g(peak, 'allocated_gib')} / {g(peak, 'reserved_gib')} | |",
        f"| per-cell cosine {pr.get('device_dtype', '')} vs CPU float32, {g(pr, 'pages')} pages: "
        f"min / mean (kept cells: min) | {g(pa, 'min')} / {g(pa, 'mean')} ({g(pk, 'min')}) | >= {COS_GOAL} |",
        f"| stored bytes per page ({g(stg, 'codec')}, {g(stg, 'vector_index_type')}) | "
        f"{g(stg, 'bytes_per_page', '{:,}')} | |",
        f"| kept cells per page (fraction; ink fraction) | {g(stg, 'kept_cells_per_page')} "
        f"({g(stg, 'kept_fraction')}; {g(stg, 'ink_fraction')}) | |",
        f"| FAISS CPU query, 8 token rows, k = {FAISS_K}, p50 | {cpu_faiss} | |",
        f"| FAISS GPU query, same | {gpu_faiss} | |",
        f"| torch exact scan on the GPU, same | {scan} | |",
        "",
    ]
    if ix.get("stages"):
        lines += [f"Limit: {ix['stages']['limit']}", ""]
    if mo.get("sweep"):
        pipe = {r["batch_size"]: r for r in pl.get("rows", [])}
        lines += [
            "| batch (pages) | encode_pages pages/s | GPU alone pages/s | indexing pages/s | peak GiB |",
            "|---|---|---|---|---|",
        ]
        for r in mo["sweep"]:
            p = pipe.get(r["batch_pages"], {})
            lines.append(
                f"| {r['batch_pages']} | {r['encode_pages_pages_per_s']} | {r['gpu_pages_per_s']} | "
                f"{p.get('pages_per_s', dash)} | {(r.get('peak') or {}).get('allocated_gib', dash)} |"
            )
        lines.append("")
    if mo.get("attention_at_best") or mo.get("chunking_at_best"):
        att = "; ".join(
            f"{a['kernel']}: {a.get('gpu_pages_per_s', a.get('error', a.get('skipped')))}"
            for a in mo.get("attention_at_best", [])
        )
        ch = "; ".join(
            f"vit {c['vit_batch']}/head {c['head_batch']}: {c.get('gpu_pages_per_s', c.get('error'))}"
            for c in mo.get("chunking_at_best", [])
        )
        lines += [f"GPU pages/s by attention kernel: {att}", "", f"GPU pages/s by tile chunking: {ch}", ""]
    if d.get("skipped") or d.get("errors"):
        lines += [f"Skipped: {d.get('skipped')}; errors in: {list(d.get('errors', {}))}", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# main
# ------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="folder for gpu_check.json / gpu_check.md")
    ap.add_argument("--work", type=Path, help="scratch folder (checkpoint, pages, index); default: a new temp dir")
    ap.add_argument("--keep-work", action="store_true", help="leave the scratch folder")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--tiny", action="store_true", help="tiny widths and few pages (the CPU test)")
    ap.add_argument("--budget-s", type=float, default=300.0, help="no phase starts after this many seconds")
    ap.add_argument("--pages", type=int)
    ap.add_argument("--pages-per-doc", type=int)
    ap.add_argument("--sweep-pages", type=int)
    ap.add_argument("--batch-sizes", type=lambda s: tuple(int(x) for x in s.split(",")), help="model sweep")
    ap.add_argument("--pipeline-batch-sizes", type=lambda s: tuple(int(x) for x in s.split(",")))
    ap.add_argument("--queries", type=int)
    ap.add_argument("--workers", type=int, help="processes making pages (0: in this process)")
    ap.add_argument("--page-size", choices=sorted(PAGE_PT), default="a4")
    ap.add_argument("--no-calibrate", action="store_true", help="keep the random text mask (about half the cells)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    plan = make_plan(a)
    a.out.mkdir(parents=True, exist_ok=True)
    work = a.work or Path(tempfile.mkdtemp(prefix="gpu_check-"))
    work.mkdir(parents=True, exist_ok=True)
    rep = Report(a.out, a.budget_s, list(sys.argv[1:] if argv is None else argv))
    d = rep.data
    d["config"] = {
        "tiny": a.tiny,
        "device": a.device,
        "dtype": a.dtype,
        "page_size": a.page_size,
        "plan": {k: v for k, v in plan.__dict__.items() if k != "ckpt_dtype"} | {"ckpt_dtype": str(plan.ckpt_dtype)},
        "work": str(work),
    }
    # pages first: the workers start before this process touches CUDA, and run while the checkpoint is built
    t_pages = time.perf_counter()
    pool, futures = start_pages(plan, work / "docs", PAGE_PT[a.page_size])
    ckpt_dir = work / "TokenOCR-random"
    try:
        rep.run("environment", lambda: environment(a.device))
        rep.run("checkpoint", lambda: build_checkpoint(plan, ckpt_dir, futures[0], a.device, not a.no_calibrate))
        made = [f.result() for f in futures]
    finally:
        if pool is not None:
            pool.shutdown()
    docs = [Path(m["path"]) for m in made]
    d["pages"] = {
        "pages": sum(m["pages"] for m in made),
        "documents": len(made),
        "page_size": a.page_size,
        "dpi": DPI,
        "ready_after_s": round(time.perf_counter() - t_pages, 2),
        "worker_seconds": round(sum(m["seconds"] for m in made), 2),
    }
    rep.save()
    if d["checkpoint"] is None:
        return finish(rep, a, work)
    spec = f"tokenocr:{ckpt_dir}"

    def load_and_sweep() -> tuple[dict, Any, list[Image.Image]]:
        from tokensearch.tokenocr_model import create_encoder

        t = time.perf_counter()
        enc = create_encoder(spec, a.device, a.dtype)
        load_s = time.perf_counter() - t
        images = read_images(docs, max(plan.sweep_pages, max(plan.batch_sizes), plan.precision_pages))
        grid = enc.grid_shape(*images[0].size)
        d["pages"] |= {
            "ink_fraction": round(float(np.mean([ink_fraction(im, grid) for im in images])), 4),
            "grid_cells": grid[0] * grid[1],
        }
        return model_phase(plan, enc, images, a.device) | {"load_s": round(load_s, 2)}, enc, images

    out = rep.run("model", load_and_sweep, need_s=30)
    if out is None:
        return finish(rep, a, work)
    _, enc, images = out
    sweep = d["model"]["sweep"]
    per_page = 1.0 / max(r["encode_pages_pages_per_s"] for r in sweep)
    gpu_pps = max(r["gpu_pages_per_s"] for r in sweep)
    rep.run(
        "pipeline_sweep",
        lambda: pipeline_sweep(plan, enc, spec, docs, work, a.device, a.dtype, rep, per_page),
        need_s=0 if a.tiny else 60,
    )
    swept = [r for r in (d["pipeline_sweep"] or {}).get("rows", []) if "pages_per_s" in r]
    batch = (d["pipeline_sweep"] or {}).get("best_batch_size") or d["model"]["best_batch_pages"]
    pipe_per_page = 1.0 / max(r["pages_per_s"] for r in swept) if swept else 3 * per_page
    del enc, out  # the index run loads its own model, as the CLI does; its peak memory is its own
    free_device_memory()
    # what comes after the index run: the precision check's CPU float32 forward of two pages, FAISS queries
    reserve = 15.0 if a.tiny else 90.0
    out = rep.run(
        "index_run",
        lambda: index_run(plan, spec, docs, work, a.device, a.dtype, batch, rep, pipe_per_page, reserve, gpu_pps),
        need_s=0 if a.tiny else 45,
    )
    enc = out[1] if out else None
    if enc is not None:
        home = Path(d["index_run"]["home"])
        rep.run("storage", lambda: storage_phase(home, d["pages"]["grid_cells"], plan.D, d["pages"]["ink_fraction"]))
        rep.run(
            "precision", lambda: precision_phase(spec, enc, images[: plan.precision_pages]), need_s=0 if a.tiny else 40
        )
        rep.run("faiss", lambda: faiss_phase(plan, enc, home, a.device), need_s=0 if a.tiny else 15)
    d["complete"] = not d["skipped"] and not d["errors"]
    return finish(rep, a, work)


def finish(rep: Report, a: argparse.Namespace, work: Path) -> int:
    rep.save()
    md = markdown(rep.data)
    (a.out / "gpu_check.md").write_text(md + "\n")
    print(md, flush=True)
    if not a.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if rep.data["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())

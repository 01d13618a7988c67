"""What the index's reductions of TokenOCR-style cell features cost in ranking and localisation.

A per-cell TokenOCR page is 196,608 cells x D (2048/4096) — it cannot be stored as it comes. The engine
(and ``TokenOCREncoder.cell_pool``) reduces it by

* cell pooling ``p x p`` (average of unit vectors, re-normalised; text probability max-pooled),
* an uncentred PCA ``D -> d`` applied to cells and query tokens alike (``storage.codec.fit_pca``),
* int8 quantisation of the stored rows (``storage.features.quantize``).

This script encodes a deterministic synthetic corpus (PyMuPDF pages of random words, known word boxes)
with ANY TokenEncoder, scores every query on every page with and without each reduction, and compares:

* ``top10``   — overlap of the top-10 pages (reduced vs unreduced), mean over queries;
* ``tau``     — Kendall tau between the per-page scores (reduced vs unreduced), mean over queries;
* ``iou``     — IoU of each query token's argmax region (cells within 0.05 cos of the map's max, as a
                page box) on the unreduced top page, reduced vs unreduced;
* ``in_box``  — fraction of query tokens whose argmax cell lies inside a true box of the query word
                (on a page that contains it), i.e. localisation against ground truth;
* ``mrr``     — mean reciprocal rank of the first page that truly contains the query word (ranking
                against ground truth, so a reduction can be compared with the unreduced model's own);
* ``B/page``  — stored bytes per page (text cells x d x 1 byte for int8, 2 bytes for float16).

Page score: for each query token the maximum cosine over the page's text cells, averaged over tokens.

    python bench/codec_eval.py --model mini --pages 24 --queries 40
    python bench/codec_eval.py --model tokenocr:/path/to/TokenOCR --device cuda --dtype bfloat16

``--cost`` instead times the full-size architecture (random weights, InternViT-300M + upsampler +
ocr_mlp, D = ``--dim``) per 448 px tile, and the pooling post-processing and feature memory per
12-tile page for ``cell_pool`` 1/2/4 — what the reductions cost in time and memory:

    python bench/codec_eval.py --cost --dim 4096 [--device cuda --dtype bfloat16]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.stats import kendalltau

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tokensearch.geometry import iou  # noqa: E402
from tokensearch.storage.codec import fit_pca  # noqa: E402
from tokensearch.storage.features import dequantize, quantize  # noqa: E402
from tokensearch.samples import calibration_pages  # noqa: E402
from tokensearch.tokenocr_model import create_encoder  # noqa: E402
from tokensearch.tokenocr_model.interface import TokenEncoder  # noqa: E402

WORDS = (
    "invoice total amount payment account harbour container storage meeting committee engineer "
    "schedule quarterly replacement crane conference thursday approved order spare parts march "
    "logistics quay street bristol description refrigerated inspection minutes maintenance blue "
    "office contract delivery customer supplier balance report annual budget receipt"
).split()
CODES = ["INV-2023-0042", "11/12/2020", "1730.00", "GB29", "PO-7781", "2024-03-15", "480.00", "X-17"]


@dataclass
class Page:
    image: Image.Image
    words: list[tuple[str, tuple[float, float, float, float]]]  # (word, normalised box)


def make_corpus(n_pages: int, dpi: float, seed: int = 0) -> list[Page]:
    """Pages of 8-14 lines of random words and codes (some pages share words, some don't)."""
    import pymupdf

    rng = random.Random(seed)
    pages = []
    for _ in range(n_pages):
        doc = pymupdf.open()
        pg = doc.new_page(width=612, height=792)
        y = 72.0
        for _ in range(rng.randint(8, 14)):
            line = " ".join(
                rng.choice(WORDS) if rng.random() > 0.15 else rng.choice(CODES) for _ in range(rng.randint(3, 7))
            )
            pg.insert_text((72, y), line, fontsize=rng.choice([10, 11, 12, 14]), fontname="helv")
            y += rng.uniform(22, 40)
            if y > 740:
                break
        words = [(w[4], (w[0] / 612, w[1] / 792, w[2] / 612, w[3] / 792)) for w in pg.get_text("words")]
        pix = pg.get_pixmap(dpi=int(round(dpi)), alpha=False)
        pages.append(Page(Image.frombytes("RGB", (pix.width, pix.height), pix.samples), words))
        doc.close()
    return pages


def pool_grid(feats: np.ndarray, text: np.ndarray, p: int) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, D), (H, W) -> p x p pooled (renormalised mean, max text); edge cells padded by repetition."""
    if p == 1:
        return feats, text
    H, W, D = feats.shape
    Hp, Wp = -(-H // p) * p, -(-W // p) * p
    f = np.pad(feats, ((0, Hp - H), (0, Wp - W), (0, 0)), mode="edge")
    t = np.pad(text, ((0, Hp - H), (0, Wp - W)), mode="edge")
    f = f.reshape(Hp // p, p, Wp // p, p, D).mean(axis=(1, 3))
    f /= np.maximum(np.linalg.norm(f, axis=-1, keepdims=True), 1e-8)
    return f.astype(np.float32), t.reshape(Hp // p, p, Wp // p, p).max(axis=(1, 3))


@dataclass
class Reduction:
    name: str
    pool: int = 1
    pca: int | None = None
    int8: bool = False


def token_maps(feats: np.ndarray, mask: np.ndarray, q: np.ndarray) -> np.ndarray:
    """(H, W, d) cells, (H, W) keep-mask, (T, d) tokens -> (T, H, W) cosine, -inf off the mask."""
    maps = np.einsum("hwd,td->thw", feats, q)
    maps[:, ~mask] = -np.inf
    return maps


def region_box(m: np.ndarray, delta: float = 0.05) -> tuple[float, float, float, float]:
    """Normalised box of the cells within ``delta`` of the map's maximum."""
    H, W = m.shape
    ys, xs = np.nonzero(m >= m.max() - delta)
    return xs.min() / W, ys.min() / H, (xs.max() + 1) / W, (ys.max() + 1) / H


def evaluate(
    encoder: TokenEncoder,
    pages: list[Page],
    queries: list[str],
    reductions: list[Reduction],
    text_threshold: float = 0.5,
) -> list[dict]:
    t0 = time.perf_counter()
    grids = []
    for i in range(0, len(pages), 4):
        grids.extend(encoder.encode_pages([p.image for p in pages[i : i + 4]]))
    encode_s = time.perf_counter() - t0
    base = [(g.features.astype(np.float32), g.text.astype(np.float32)) for g in grids]
    qs = [encoder.embed_query(q) for q in queries]
    D = base[0][0].shape[-1]

    def reduced(red: Reduction):
        pooled = [pool_grid(f, t, red.pool) for f, t in base]
        masks = [t >= text_threshold for _, t in pooled]
        if not any(m.any() for m in masks):  # a model without a usable text mask: keep every cell
            masks = [np.ones_like(m) for m in masks]
        codec = None
        if red.pca is not None and red.pca < D:
            sample = np.concatenate([f[m] for (f, _), m in zip(pooled, masks)])[:4096]
            codec = fit_pca(sample, red.pca)
        feats = []
        for (f, _), m in zip(pooled, masks):
            flat = f.reshape(-1, D)
            if codec is not None:
                flat = codec.apply(flat)
            if red.int8:
                flat = dequantize(quantize(flat))
            feats.append(flat.reshape(*f.shape[:2], -1))
        qv = [codec.apply(q.vectors) if codec is not None else q.vectors for q in qs]
        d = feats[0].shape[-1]
        nbytes = float(np.mean([m.sum() * d * (1 if red.int8 else 2) for m in masks]))
        return feats, masks, qv, nbytes

    def scores_and_maps(feats, masks, qv):
        out = []
        for qi in range(len(qs)):
            per_page = []
            for f, m in zip(feats, masks):
                maps = token_maps(f, m, qv[qi])
                per_page.append((float(np.mean(maps.reshape(len(maps), -1).max(axis=1))), maps))
            out.append(per_page)
        return out

    ref_feats, ref_masks, ref_q, _ = reduced(Reduction("unreduced"))
    ref = scores_and_maps(ref_feats, ref_masks, ref_q)
    rows = []
    for red in reductions:
        t1 = time.perf_counter()
        feats, masks, qv, nbytes = reduced(red)
        got = ref if red.name == "unreduced" else scores_and_maps(feats, masks, qv)
        top10, taus, ious, in_box, rr = [], [], [], [], []
        for qi, query in enumerate(queries):
            s_ref = np.array([s for s, _ in ref[qi]])
            s_red = np.array([s for s, _ in got[qi]])
            k = min(10, len(pages))
            top10.append(len(set(np.argsort(-s_ref)[:k]) & set(np.argsort(-s_red)[:k])) / k)
            tau = kendalltau(s_ref, s_red).statistic
            taus.append(0.0 if np.isnan(tau) else tau)
            relevant = [i for i, p in enumerate(pages) if any(w == query for w, _ in p.words)]
            if relevant:
                order = list(np.argsort(-s_red))
                rr.append(1.0 / (1 + min(order.index(i) for i in relevant)))
            best = int(np.argmax(s_ref))
            for m_ref, m_red in zip(ref[qi][best][1], got[qi][best][1]):
                ious.append(iou(region_box(m_ref), region_box(m_red)))
            truth = [b for w, b in pages[best].words if w == query]
            if truth:
                for m_red in got[qi][best][1]:
                    H, W = m_red.shape
                    y, x = np.unravel_index(np.argmax(m_red), m_red.shape)
                    cx, cy = (x + 0.5) / W, (y + 0.5) / H
                    in_box.append(any(b[0] <= cx <= b[2] and b[1] <= cy <= b[3] for b in truth))
        rows.append(
            {
                "reduction": red.name,
                "top10": float(np.mean(top10)),
                "tau": float(np.mean(taus)),
                "iou": float(np.mean(ious)),
                "in_box": float(np.mean(in_box)) if in_box else float("nan"),
                "mrr": float(np.mean(rr)) if rr else float("nan"),
                "bytes_per_page": nbytes,
                "seconds": time.perf_counter() - t1,
            }
        )
    rows.append(
        {
            "encode_seconds_per_page": round(encode_s / len(pages), 3),
            "dim": D,
            "grid": list(base[0][0].shape[:2]),
            "cell_px": round(pages[0].image.width / base[0][0].shape[1], 2),
        }
    )  # unpooled cell width
    return rows


def default_reductions(D: int, pca_dims: list[int]) -> list[Reduction]:
    reds = [Reduction("unreduced"), Reduction("int8", int8=True)]
    reds += [Reduction(f"pool{p}", pool=p) for p in (2, 4)]
    dims = [d for d in pca_dims if d < D]
    reds += [Reduction(f"pca{d}", pca=d) for d in dims]
    if dims:
        d = max(dims)
        reds += [
            Reduction(f"pool2+pca{d}+int8", pool=2, pca=d, int8=True),
            Reduction(f"pool4+pca{d}+int8", pool=4, pca=d, int8=True),
        ]
    reds += [Reduction("pool2+int8", pool=2, int8=True)]
    return reds


def markdown(rows: list[dict], meta: dict) -> str:
    head = (
        "| reduction | top-10 overlap | Kendall tau | argmax-region IoU | argmax in true box | MRR (truth) "
        "| bytes/page |\n|---|---|---|---|---|---|---|\n"
    )
    body = "".join(
        f"| {r['reduction']} | {r['top10']:.3f} | {r['tau']:.3f} | {r['iou']:.3f} | {r['in_box']:.3f} | "
        f"{r['mrr']:.3f} | "
        f"{r['bytes_per_page'] / 1024:.0f} KiB |\n"
        for r in rows
        if "reduction" in r
    )
    return head + body + "\n" + " ".join(f"{k}={v}" for k, v in meta.items()) + "\n"


def measure_cost(dim: int, device: str, dtype: str, tiles: int = 1) -> str:
    """Full-size TokenOCR with random weights: seconds per tile (ViT, head) and per-page pooling cost."""
    import torch

    from tokensearch.tokenocr_model.devices import autocast, resolve_device, resolve_dtype
    from tokensearch.tokenocr_model.tokenocr import TokenOCR, TokenOCRConfig, TokenOCREncoder, VisionConfig

    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    torch.manual_seed(0)
    cfg = TokenOCRConfig(vision=VisionConfig(), hidden_size=dim, vocab_size=16, upsample=True)
    with torch.device("meta"):
        model = TokenOCR(cfg)
    model = model.to_empty(device="cpu")
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1:
                p.normal_(0, 0.02)
            else:
                p.fill_(0.0 if name.endswith("bias") else 1.0)
        for name, b in model.named_buffers():
            b.fill_(1.0 if "running_var" in name else 0.0)
    model = model.eval().to(dev, dt)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    x = torch.randn(tiles, 3, 448, 448, device=dev, dtype=dt)
    lines = [
        f"full-size TokenOCR, D={dim}, {sum(p.numel() for p in model.parameters()) / 1e6:.0f} M parameters, "
        f"{device} {dtype}, {torch.get_num_threads()} threads, {tiles} tile(s) per call"
    ]
    with torch.inference_mode(), autocast(dev, dt):
        model.vision_model(x[:1], 1)  # warm-up
        sync()
        t0 = time.perf_counter()
        h = model.vision_model(x, cfg.n_layers_used)
        sync()
        t1 = time.perf_counter()
        f = model.head(h)
        sync()
        t2 = time.perf_counter()
        lines.append(f"- ViT: {(t1 - t0) / tiles:.3f} s/tile; upsample + ocr_mlp: {(t2 - t1) / tiles:.3f} s/tile")
        space = torch.nn.functional.normalize(torch.randn(dim, device=dev), dim=0)
        for pool in (1, 2, 4):
            enc = TokenOCREncoder.__new__(TokenOCREncoder)  # only the post-processing state
            enc.text_reference, enc.space_vector, enc.cell_pool = "space", space, pool
            enc.feature_dtype = np.dtype(np.float16)
            sync()
            t = time.perf_counter()
            unit, _ = enc._postprocess(f)
            sync()
            per_tile = unit[0].numel() * 2
            ms = 1000 * (time.perf_counter() - t) / tiles
            lines.append(
                f"- cell_pool={pool}: normalise+text+pool {ms:.0f} ms/tile; "
                f"{unit.shape[1]}x{unit.shape[2]} cells/tile; fp16 features of a 12-tile page: "
                f"{12 * per_tile / 2**30:.2f} GiB ({12 * unit.shape[1] * unit.shape[2]:,} cells)"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="mini", help="registry spec: mini | tokenocr:/path")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--pages", type=int, default=24)
    ap.add_argument("--queries", type=int, default=40)
    ap.add_argument("--pca-dims", default="16,32,64,128,256")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print JSON rows instead of a Markdown table")
    ap.add_argument("--cost", action="store_true", help="time the full-size architecture instead (random weights)")
    ap.add_argument("--dim", type=int, default=4096, help="D for --cost (2048 bilingual, 4096 English)")
    ap.add_argument("--tiles", type=int, default=1, help="tiles per forward for --cost")
    args = ap.parse_args(argv)
    if args.cost:
        print(measure_cost(args.dim, args.device, args.dtype, args.tiles))
        return 0

    encoder = create_encoder(args.model, device=args.device, dtype=args.dtype, int8_pages=calibration_pages)
    pages = make_corpus(args.pages, encoder.dpi, args.seed)
    vocab = sorted({w for p in pages for w, _ in p.words})
    rng = random.Random(args.seed + 1)
    queries = rng.sample(vocab, min(args.queries, len(vocab)))
    reductions = default_reductions(encoder.info.dim, [int(x) for x in args.pca_dims.split(",")])
    rows = evaluate(encoder, pages, queries, reductions)
    meta = {
        "model": args.model,
        "fingerprint": encoder.info.fingerprint[:12],
        "pages": args.pages,
        "queries": len(queries),
        **rows[-1],
    }
    print(json.dumps(rows, indent=1) if args.json else markdown(rows, meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

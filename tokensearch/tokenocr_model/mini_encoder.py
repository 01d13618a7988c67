"""The mini model behind the engine's :class:`~.interface.TokenEncoder`: loading, page encoding, token vectors.

:func:`load_mini` reads the weights (:mod:`.mini`) and the tokenizer, and :class:`MiniEncoder` encodes
pages in batches of equal size through the fastest CPU path the machine has (:mod:`.mini_fast`),
running the net only on the bands of text; token vectors are composed once for the whole vocabulary.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from .devices import int8_engine, resolve_device, resolve_dtype, winograd_available
from .interface import CalibrationPages, FeatureGrid, ModelInfo, QueryTokens, Token
from .mini import MiniModel, TokenComposer, image_to_tensor, load_state, pad_to_stride, read_weights, split_head
from .mini_fast import HALO_PX, fuse_conv_bn, infer_trunk, ink_frames, int8_calibration_samples, quantize_int8
from .mini_files import mini_paths
from .mini_tokenizer import MiniTokenizer, piece_to_text
from .query_side import TableQueryEmbedder, files_stamp

log = logging.getLogger(__name__)

CODEBOOK_FILE = "cells.pq.npz"  # beside the weights: their cell codebook and the weights' fingerprint


def weights_fingerprint(wfile: Path, tfile: Path) -> str:
    """sha256 of what the features depend on: the tensors, the config and the tokenizer — not the
    ``extra`` metadata (threshold, verify weight, training record), so recalibrating the threshold leaves
    indexes built with these weights valid."""
    raw = Path(wfile).read_bytes()
    n = int.from_bytes(raw[:8], "little")  # safetensors: header length, JSON header, tensor bytes
    header = json.loads(raw[8 : 8 + n])
    meta = header.pop("__metadata__", None) or {}
    h = hashlib.sha256()
    h.update(json.dumps(header, sort_keys=True).encode())
    h.update(meta.get("config", "").encode())
    h.update(raw[8 + n :])
    h.update(Path(tfile).read_bytes())
    return h.hexdigest()


class MiniEncoder:
    """:class:`~tokensearch.tokenocr_model.interface.TokenEncoder` for the mini model."""

    def __init__(
        self,
        model: MiniModel,
        tokenizer: MiniTokenizer,
        name: str = "mini",
        fingerprint: str = "",
        extra: dict | None = None,
        device: str = "cpu",
        dtype: str = "float32",
        batch_size: int = 1,
        int8_pages: CalibrationPages | None = None,
    ):
        self.cfg = model.cfg
        self.tokenizer = tokenizer
        self.files: list[Path] = []  # weight + tokenizer files (set by load_mini)
        self.device = resolve_device(device)
        # int8: asked for, or "auto" on any CPU. It is the numerics the shipped thresholds were calibrated in,
        # and the float paths read fewer words at them; it is also the fastest, with int8 dot products (VNNI)
        # and without them on oneDNN's kernels (``int8_engine``; BENCHMARKS.md, "Precision and dtype"),
        # though on older CPUs measured only with fbgemm's it indexed a little slower. int8 measures activation
        # ranges on ``int8_pages`` (the engine passes the built-in sample pages): without them "auto" takes
        # bf16 where native, else float32 with its 3x3 convs by Winograd.
        wanted = str(dtype).lower()
        cpu = self.device.type == "cpu"
        self.int8 = wanted == "int8" or (wanted == "auto" and cpu and int8_pages is not None)
        if self.int8 and not cpu:
            raise ValueError("dtype int8 runs on the CPU only; use --dtype auto on a GPU")
        if self.int8 and int8_pages is None:
            raise ValueError(
                "dtype int8 needs pages to calibrate on: pass int8_pages (e.g. "
                "tokensearch.samples.calibration_pages, as the engine does)"
            )
        self._int8_pages = int8_pages
        self.dtype = torch.float32 if self.int8 else resolve_dtype(dtype, self.device)
        self.winograd = cpu and not self.int8 and self.dtype == torch.float32 and winograd_available()
        self._int8_net: nn.Module | None = None  # built at the first page encoded (~1-2 s)
        self.int8_engine = int8_engine()  # whose int8 kernels run it (a benchmark may set another first)
        self._paper_cell: tuple[np.ndarray, float] | None = None
        # the product quantiser an index packs this model's cells with ("centroids" (m, 256, D/m), "rotation"
        # (D, D)); None: int8. load_mini sets it from the file fitted for these weights (training/codebook.py)
        self.cell_codebook: dict[str, np.ndarray] | None = None
        self.batch_size = batch_size
        self.dpi = float(self.cfg.dpi)
        self.grey = True  # the vision net reads one grey channel (mini.image_to_tensor)
        model.eval()
        with torch.no_grad():
            self._vocab = self._compose_vocab(model.composer).numpy()  # (V, D) cached token vectors
        self.vision = fuse_conv_bn(model.vision).to(self.device, self.dtype).eval()
        if self.device.type == "cpu":  # oneDNN convs are fastest in NHWC on CPUs
            self.vision = self.vision.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # not in torch's stub
        self.composer = model.composer
        extra = dict(extra or {})
        extra.setdefault("threshold", 0.5)
        extra.setdefault("stride", self.cfg.stride)
        extra.setdefault("score", "mean over the query's tokens of the max cosine of the token at its matched cells")
        self.info = ModelInfo(name=name, family="mini", fingerprint=fingerprint, dim=self.cfg.dim, extra=extra)

    def _compose_vocab(self, composer: TokenComposer, chunk: int = 2048) -> torch.Tensor:
        texts = [piece_to_text(p) for p in self.tokenizer.pieces()]
        return torch.cat([composer(texts[i : i + chunk]).float().cpu() for i in range(0, len(texts), chunk)])

    # --- geometry -----------------------------------------------------------------------------------
    def grid_shape(self, width: int, height: int) -> tuple[int, int]:
        s = self.cfg.stride
        return -(-int(height) // s), -(-int(width) // s)

    # --- images ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_pages(self, images: Sequence[Image.Image]) -> list[FeatureGrid]:
        # batch images of equal size together (pages of one PDF usually are)
        order = sorted(range(len(images)), key=lambda i: images[i].size)
        results: dict[int, FeatureGrid] = {}
        s = self.cfg.stride
        i = 0
        while i < len(order):
            j = i + 1
            while j < len(order) and j - i < self.batch_size and images[order[j]].size == images[order[i]].size:
                j += 1
            batch = torch.stack([image_to_tensor(images[k]) for k in order[i:j]])  # (B, 1, H, W)
            h, w = self.grid_shape(batch.shape[-1], batch.shape[-2])
            paper_feat, paper_text = self._paper()
            full = np.empty((j - i, h, w, self.cfg.dim), dtype=np.float32)
            full[:] = paper_feat  # outside the text bands the net would see only paper
            full_text = np.full((j - i, h, w), paper_text, dtype=np.float32)
            for y0, x0, y1, x1 in ink_frames(batch, s):  # the net runs on the bands of text only
                feats, text = self._run(batch[:, :, y0:y1, x0:x1])
                gy, gx, ch, cw = y0 // s, x0 // s, feats.shape[1], feats.shape[2]
                full[:, gy : gy + ch, gx : gx + cw] = feats
                full_text[:, gy : gy + ch, gx : gx + cw] = text
            for n, k in enumerate(order[i:j]):
                results[k] = FeatureGrid(features=full[n], text=full_text[n])
            i = j
        return [results[k] for k in range(len(images))]

    def _run(self, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(B, 1, H, W) pixels -> unit features (B, h, w, D) and text probabilities (B, h, w), float32."""
        h, w = self.grid_shape(batch.shape[-1], batch.shape[-2])
        x = pad_to_stride(batch, self.cfg.stride).to(self.device, self.dtype)
        if self.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        feats, text = split_head(self._int8()(x) if self.int8 else infer_trunk(self.vision, x, self.winograd))
        # unit length again in float32 (bf16 rounding leaves norms of 1 +/- 0.4 %)
        unit = F.normalize(feats[:, :, :h, :w].float(), dim=1).permute(0, 2, 3, 1).cpu().numpy()
        return unit, torch.sigmoid(text[:, :h, :w].float()).cpu().numpy()

    def _paper(self) -> tuple[np.ndarray, float]:
        """Feature and text probability of a cell that sees nothing but paper (the centre of a blank
        page larger than the receptive field)."""
        if self._paper_cell is None:
            side = 4 * max(HALO_PX) + 8 * self.cfg.stride
            feats, text = self._run(torch.ones(1, 1, side, side))
            c = feats.shape[1] // 2
            self._paper_cell = (feats[0, c, c].copy(), float(text[0, c, c]))
        return self._paper_cell

    @torch.no_grad()
    def _int8(self) -> nn.Module:
        if self._int8_net is None:
            assert self._int8_pages is not None  # checked in __init__
            self._int8_net = quantize_int8(
                self.vision, int8_calibration_samples(self._int8_pages(self.dpi), self.cfg.stride), self.int8_engine
            )
        return self._int8_net

    # --- text ------------------------------------------------------------------------------------------
    def tokenize(self, text: str) -> list[Token]:
        return self.tokenizer.tokenize(text)

    def token_vectors(self, ids: Sequence[int]) -> np.ndarray:
        rows = np.asarray(list(ids), dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self._vocab)):
            raise IndexError(f"token id out of range 0..{len(self._vocab) - 1}")
        return self._vocab[rows].astype(np.float32, copy=True).reshape(len(rows), self.cfg.dim)

    def vocabulary(self) -> np.ndarray:
        return self._vocab

    def query_side(self) -> TableQueryEmbedder:
        """The torch-free query half (tokenizer + vocabulary vectors) the engine caches for fast searches."""
        return TableQueryEmbedder(
            self.info, self.tokenizer.tokenize, self._vocab, files_stamp(self.files), tuple(self.vocabulary_texts())
        )

    def vocabulary_texts(self) -> list[str]:
        return [piece_to_text(p) for p in self.tokenizer.pieces()]

    def embed_query(self, text: str) -> QueryTokens:
        tokens = self.tokenize(text)
        return QueryTokens(text=text, tokens=tokens, vectors=self.token_vectors([t.id for t in tokens]))

    @torch.no_grad()
    def embed_strings(self, strings: Sequence[str]) -> np.ndarray:
        """Vectors of arbitrary token strings (leading space = the space flag), even outside the vocabulary."""
        return self.composer(list(strings)).float().cpu().numpy()


def load_mini(
    path: str | Path | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    int8_pages: CalibrationPages | None = None,
    codebook: bool = True,
) -> MiniEncoder:
    """Load the mini model: shipped weights when ``path`` is None, else a directory (or .safetensors file).
    ``int8_pages``: what int8 inference calibrates on (see :class:`MiniEncoder`). ``codebook``: read the
    cell codebook beside the weights if there is one (:data:`CODEBOOK_FILE`; one fitted for other weights is
    left out, with a warning)."""
    wfile, tfile, name = mini_paths(path)
    if not wfile.is_file():
        raise FileNotFoundError(
            f"mini weights not found: {wfile} (train them with `tokensearch train --out DIR` and use --model mini:DIR)"
        )
    tokenizer = MiniTokenizer.from_file(tfile)
    state, cfg, extra = read_weights(wfile)
    model = MiniModel(cfg)
    load_state(model, state, str(wfile))
    enc = MiniEncoder(
        model,
        tokenizer,
        name=name,
        fingerprint=weights_fingerprint(wfile, tfile),
        extra=extra,
        device=device,
        dtype=dtype,
        int8_pages=int8_pages,
    )
    enc.files = [wfile, tfile]
    cfile = wfile.parent / CODEBOOK_FILE
    if codebook and cfile.is_file():
        with np.load(cfile, allow_pickle=False) as f:
            if str(f["weights"]) == enc.info.fingerprint:
                enc.cell_codebook = {k: np.asarray(f[k], dtype=np.float32) for k in f.files if k != "weights"}
            else:  # another model's cells: new indexes store these weights' cells as int8 (larger, not worse)
                log.warning(
                    "%s was fitted for other weights than %s and is not used: refit it "
                    "(python3 -m tokensearch.training.codebook --weights %s --pdf-dir DIR) or remove it",
                    cfile,
                    wfile,
                    wfile.parent,
                )
    return enc

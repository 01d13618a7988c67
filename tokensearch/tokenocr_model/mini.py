"""The embedded default model "mini": a small TokenOCR-like token-level text-image model for CPUs.

Two halves living in one D-dimensional space (read top to bottom):

1. ``TokenComposer`` — text side. TokenOCR reads a token's vector from the LLM's embedding table; a
   table only knows tokens seen in training, so mini *composes* every token's vector from its
   characters instead: each character adds a learned embedding per (character, PHOC level/bin) — where
   in the token it sits at 1/1, 1/2, 1/3, 1/4 resolution — plus embeddings of the token length and of
   the leading-space flag; a small MLP maps the sum into the space. Every id of the vocabulary (and any
   string) has a vector, so unseen words, names, numbers and codes are searchable. Vectors of the
   whole vocabulary are computed once at load time and cached.

2. ``VisionEncoder`` — image side. Grayscale page at 150 DPI -> stride-8 feature grid (one cell ~ one
   character of 10 pt text) -> unit vectors in the token space + a text/background logit per cell.
   Cheap on CPU: a 4x4 patchify stem, a conv (and optional residual blocks) at 1/4, a stride-2 conv
   to 1/8, then residual blocks mixing a 3x3 neighbourhood with wide horizontal context (dilated 1xk
   convs), so a cell "reads" the token around it.

The page image is padded to a multiple of the stride (white) and the grid cropped back to
``ceil(H/8) x ceil(W/8)``, so the grid covers the page uniformly: cell (x, y) = page box
``[x/W, y/H, (x+1)/W, (y+1)/H]`` with ``W, H`` the grid size (the last cell row/column may extend a
few pixels beyond the page — at most 7 px at 150 DPI).

Weights: ``weights/mini.safetensors`` + ``weights/tokenizer.json`` in this package (or a directory
given as ``mini:/dir``); ``metadata["config"]`` holds the :class:`MiniConfig` as JSON and
``metadata["extra"]`` the calibrated score threshold and training record.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from ..imaging import gray_levels
from .devices import cpu_has_int8_dot, resolve_device, resolve_dtype, winograd_available
from .interface import CalibrationPages, FeatureGrid, ModelInfo, QueryTokens, Token
from .mini_tokenizer import MiniTokenizer, piece_to_text
from .query_side import TableQueryEmbedder, files_stamp
from .mini_files import mini_paths
# re-exported: training/calibrate.py (edited elsewhere this session) imports them from here
from .mini_files import WEIGHTS_DIR, WEIGHTS_FILE  # noqa: F401


@dataclass
class MiniConfig:
    dim: int = 96  # D: token and cell vectors
    stride: int = 8  # pixels of the input per grid cell (fixed by the three stride-2 stages)
    widths: tuple[int, int, int] = (32, 32, 96)  # channels: stem 1/4, conv 1/4, 1/8
    n_blocks: int = 4  # context blocks at 1/8: 3x3, 1xk dil 2, 1xk dil 4, 3x3, then the plan again
    quarter_blocks: int = 0  # residual 3x3 blocks at 1/4 (glyph detail) after conv4
    horiz_kernel: int = 5
    n_chars: int = 128 + 32  # ASCII + hashed buckets for other characters
    char_dim: int = 256
    max_len: int = 16  # token length embedding buckets
    phoc_levels: tuple[int, ...] = (1, 2, 3, 4)
    dpi: float = 150.0

    @classmethod
    def from_dict(cls, d: dict) -> MiniConfig:
        known = {f.name for f in fields(cls)}
        d = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in known}
        return cls(**d)


# ------------------------------------------------------------------------------------------------------
# text side
# ------------------------------------------------------------------------------------------------------

def char_index(ch: str, n_chars: int) -> int:
    o = ord(ch)
    if 32 <= o < 128:
        return o
    return 128 + (o % (n_chars - 128))  # hashed bucket for everything else (0..31 unused: no controls)


def phoc_slots(n: int, levels: Sequence[int]) -> list[list[int]]:
    """For each of n characters, the PHOC slot ids it falls in (one per level; slot = level offset + bin).

    Character i covers [i/n, (i+1)/n]; at level L it belongs to the bin holding its centre.
    """
    out = []
    for i in range(n):
        centre = (i + 0.5) / n
        slots, off = [], 0
        for L in levels:
            slots.append(off + min(L - 1, int(centre * L)))
            off += L
        out.append(slots)
    return out


class TokenComposer(nn.Module):
    """Token string -> unit vector, from its characters (PHOC-style bag of (char, slot) embeddings)."""

    def __init__(self, cfg: MiniConfig):
        super().__init__()
        self.cfg = cfg
        self.n_slots = sum(cfg.phoc_levels)
        self.char_emb = nn.Embedding(cfg.n_chars * self.n_slots, cfg.char_dim)
        self.len_emb = nn.Embedding(cfg.max_len + 1, cfg.char_dim)
        self.space_emb = nn.Embedding(2, cfg.char_dim)
        self.mlp = nn.Sequential(nn.LayerNorm(cfg.char_dim), nn.Linear(cfg.char_dim, 2 * cfg.char_dim), nn.GELU(),
                                 nn.Linear(2 * cfg.char_dim, cfg.dim))
        nn.init.normal_(self.char_emb.weight, std=0.3)
        nn.init.normal_(self.len_emb.weight, std=0.1)
        nn.init.normal_(self.space_emb.weight, std=0.3)

    def featurize(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Strings -> (flat slot ids (S,), owner row per id (S,), lengths (N,), space flags (N,))."""
        cfg = self.cfg
        ids, owner, lens, space = [], [], [], []
        for row, t in enumerate(texts):
            sp = t.startswith(" ")
            body = t[1:] if sp else t
            body = body if body else " "  # the space token itself
            for ch, slots in zip(body, phoc_slots(len(body), cfg.phoc_levels)):
                c = char_index(ch, cfg.n_chars)
                for s in slots:
                    ids.append(c * self.n_slots + s)
                    owner.append(row)
            lens.append(min(len(body), cfg.max_len))
            space.append(int(sp))
        return (torch.tensor(ids, dtype=torch.long), torch.tensor(owner, dtype=torch.long),
                torch.tensor(lens, dtype=torch.long), torch.tensor(space, dtype=torch.long))

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        ids, owner, lens, space = self.featurize(texts)
        dev = self.char_emb.weight.device
        e = self.char_emb(ids.to(dev))  # (S, E)
        h = torch.zeros(len(texts), e.shape[1], device=dev, dtype=e.dtype).index_add_(0, owner.to(dev), e)
        h = h / lens.to(dev).clamp(min=1).unsqueeze(1).to(e.dtype).sqrt()  # (N, E)
        h = h + self.len_emb(lens.to(dev)) + self.space_emb(space.to(dev))
        return F.normalize(self.mlp(h), dim=-1)  # (N, D)


# ------------------------------------------------------------------------------------------------------
# image side
# ------------------------------------------------------------------------------------------------------

def conv_bn(cin: int, cout: int, k: int | tuple[int, int] = 1, stride: int = 1,
            dilation: int | tuple[int, int] = 1) -> nn.Sequential:
    """Conv (no bias) + BatchNorm; folded into one biased conv for inference by :func:`fuse_conv_bn`."""
    k2 = (k, k) if isinstance(k, int) else k
    d2 = (dilation, dilation) if isinstance(dilation, int) else dilation
    if stride > 1 and stride == k2[0]:  # patchify (kernel == stride) needs no padding
        pad = (0, 0)
    else:
        pad = (d2[0] * (k2[0] - 1) // 2, d2[1] * (k2[1] - 1) // 2)
    return nn.Sequential(nn.Conv2d(cin, cout, k2, stride, pad, dilation=d2, bias=False), nn.BatchNorm2d(cout))


class ContextBlock(nn.Module):
    """Residual conv at 1/8: a 3x3 neighbourhood or a dilated 1xk row (horizontal reading context)."""

    def __init__(self, c: int, k: tuple[int, int], dilation: tuple[int, int]):
        super().__init__()
        self.conv = conv_bn(c, c, k, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.relu(self.conv(x))  # (B, C, h, w)


class VisionEncoder(nn.Module):
    """Grayscale page (B, 1, H, W) in [0, 1] (ink dark) -> cell vectors (B, D, H/8, W/8) + text logits.

    Plain dense convs: on CPUs they run near peak FLOP/s, unlike depthwise ones. Horizontal receptive
    field ~ +/- 110 px (about 14 characters of 10 pt text at 150 DPI), vertical ~ +/- 30 px (one line).
    """

    def __init__(self, cfg: MiniConfig):
        super().__init__()
        c1, c2, c3 = cfg.widths
        self.stem = conv_bn(1, c1, 4, 4)  # patchify 4x4 -> 1/4
        self.conv4 = conv_bn(c1, c2, 3)  # glyph strokes at 1/4
        self.quarter = nn.ModuleList(ContextBlock(c2, (3, 3), (1, 1)) for _ in range(cfg.quarter_blocks))
        self.down8 = conv_bn(c2, c3, 3, 2)  # -> 1/8
        plan = [((3, 3), (1, 1)), ((1, cfg.horiz_kernel), (1, 2)), ((1, cfg.horiz_kernel), (1, 4)), ((3, 3), (1, 1))]
        self.blocks = nn.ModuleList(ContextBlock(c3, *plan[i % len(plan)]) for i in range(cfg.n_blocks))
        self.head = nn.Conv2d(c3, cfg.dim + 1, 1)  # D feature channels + 1 text logit

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) page -> (B, D+1, h, w): D raw feature channels and the text logit."""
        x = 1.0 - x  # ink -> 1, paper -> 0
        x = F.relu(self.stem(x))  # (B, c1, H/4, W/4)
        x = F.relu(self.conv4(x))  # (B, c2, H/4, W/4)
        for b in self.quarter:
            x = b(x)
        x = F.relu(self.down8(x))  # (B, c3, H/8, W/8)
        for b in self.blocks:
            x = b(x)
        return self.head(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return split_head(self.trunk(x))


def split_head(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Head output (B, D+1, h, w) -> unit feature vectors (B, D, h, w) and text logits (B, h, w)."""
    return F.normalize(out[:, :-1], dim=1), out[:, -1]


def infer_trunk(vision: VisionEncoder, x: torch.Tensor, winograd: bool = False) -> torch.Tensor:
    """:meth:`VisionEncoder.trunk` for inference (no autograd): ReLUs and residual adds in place (one
    memory pass less per layer, ~8 % of a page on CPU), and with ``winograd`` the 3x3 convs at 1/8 — half
    of the net's multiply-adds — by NNPACK's Winograd transform (float32, NCHW), the 1xk ones by oneDNN
    (NHWC, its fastest layout for them). On CPUs without int8 dot products this is the fastest path, ahead
    of oneDNN alone and of int8; the head output differs from :meth:`~VisionEncoder.trunk`'s by ~1e-4
    (BENCHMARKS.md, "Precision and dtype")."""
    x = 1.0 - x
    x = F.relu(vision.stem(x), inplace=True)
    x = F.relu(vision.conv4(x), inplace=True)
    for b in vision.quarter:
        x = F.relu(b.conv(x), inplace=True).add_(x)
    x = F.relu(vision.down8(x), inplace=True)
    for b in vision.blocks:
        conv = b.conv
        if winograd and conv.kernel_size == (3, 3) and conv.dilation == (1, 1):
            x = x.contiguous()
            y = torch._nnpack_spatial_convolution(x, conv.weight, conv.bias, list(conv.padding), [1, 1])
        else:
            if winograd:
                x = x.contiguous(memory_format=torch.channels_last)
            y = conv(x)
        x = F.relu(y, inplace=True).add_(x)
    if winograd:
        x = x.contiguous(memory_format=torch.channels_last)
    return vision.head(x)


class _Trunk(nn.Module):
    """The vision net up to its head output: what int8 quantization traces (the split stays in float)."""

    def __init__(self, vision: VisionEncoder):
        super().__init__()
        self.vision = vision

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vision.trunk(x)


def quantize_int8(vision: VisionEncoder, samples: Sequence[torch.Tensor]) -> nn.Module:
    """Static int8 copy of a (conv-BN-fused, float32) vision net for CPUs without native bf16.

    There float32 convolutions already run at the CPU's peak FLOP rate, so only fewer bits go faster:
    int8 weights (per channel) and activations (ranges from histogram observers run on ``samples``,
    (1, 1, H, W) page tensors) make the net faster where the CPU has int8 dot products, with features
    close to float32's (BENCHMARKS.md, "Precision and dtype"). The output is dequantized float.
    About 1 s once per process."""
    import copy

    import torch.fx.config
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    # FX records a symbolized stack trace per node by default; symbolizing imports half of torch's
    # compiler stack (~2.5 s of the ~3.5 s this took). The flag is read when the tracer is created.
    emit = torch.fx.config.do_not_emit_stack_traces
    with warnings.catch_warnings():  # torch.ao's FX API warns that it moves to torchao
        warnings.simplefilter("ignore")
        try:
            torch.fx.config.do_not_emit_stack_traces = True
            prepared = prepare_fx(_Trunk(copy.deepcopy(vision)).eval(), get_default_qconfig_mapping("x86"),
                                  example_inputs=(samples[0],))
        finally:
            torch.fx.config.do_not_emit_stack_traces = emit
        with torch.no_grad():
            for x in samples:
                prepared(x)
        return convert_fx(prepared).eval()


def int8_calibration_samples(images: Sequence[Image.Image], stride: int) -> list[torch.Tensor]:
    """Activation-range samples for :func:`quantize_int8` from page images (the caller's fixed pages,
    rendered at the model's dpi, so every run quantizes the same way): their text areas as tensors."""
    pages = [image_to_tensor(img)[None] for img in images]
    frames = [ink_box(x, stride) for x in pages]  # the observers' cost grows with the pixels: text only
    return [pad_to_stride(x[:, :, y0:y1, x0:x1], stride).contiguous(memory_format=torch.channels_last)
            for x, (y0, x0, y1, x1) in zip(pages, frames)]


class MiniModel(nn.Module):
    def __init__(self, cfg: MiniConfig):
        super().__init__()
        self.cfg = cfg
        self.vision = VisionEncoder(cfg)
        self.composer = TokenComposer(cfg)
        # SigLIP-style logit scale and bias, learned (also used to calibrate per-cell BCE)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        self.logit_bias = nn.Parameter(torch.tensor(-5.0))
        # per-cell "this cell shows that token" logit = exp(cell_scale) * cos + cell_bias
        self.cell_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        self.cell_bias = nn.Parameter(torch.tensor(-5.0))


# ------------------------------------------------------------------------------------------------------
# preprocessing, loading, the TokenEncoder
# ------------------------------------------------------------------------------------------------------

def image_to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL image (any mode) -> (1, H, W) float32 in [0, 1], read by :func:`tokensearch.imaging.gray_levels`."""
    return torch.from_numpy(gray_levels(img))[None]


def pad_to_stride(x: torch.Tensor, stride: int) -> torch.Tensor:
    """(B, 1, H, W) -> padded with white at right/bottom to multiples of ``stride``."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % stride, (-w) % stride
    return F.pad(x, (0, pw, 0, ph), value=1.0) if (ph or pw) else x


INK_LEVEL = 0.6  # a pixel darker than this (0 black .. 1 white) is ink when framing a page
HALO_PX = (40, 120)  # (vertical, horizontal) margin kept around the ink: the net's receptive field radius


BAND_GAP_PX = 64  # paper rows between two bands of text below which they are computed as one


def ink_frames(batch: torch.Tensor, stride: int) -> list[tuple[int, int, int, int]]:
    """(y0, x0, y1, x1) pixel boxes of a (B, 1, H, W) batch that the vision net must see: its bands of
    text — runs of rows with ink, split where more than the receptive field plus ``BAND_GAP_PX`` of
    paper lies between two inked rows — each with its own ink columns, plus the receptive field;
    corners on multiples of ``stride`` so a crop's cells are the page's.

    Cells farther from any ink than the receptive field see only paper: they are never text, and
    computing them is wasted (page margins and the space between a letterhead, the body and a footer:
    28 % of the dev benchmark's page area, where a single frame around all the ink saved 19 %). Ink-free
    pages keep a single stride-sized box."""
    darkest = batch.amin(dim=(0, 1))  # (H, W); two small reductions are 5x cheaper than a boolean image
    H, W = darkest.shape
    rows = torch.nonzero(darkest.amin(dim=1) < INK_LEVEL).flatten().tolist()
    if not rows:
        return [(0, 0, min(H, stride), min(W, stride))]
    hy, hx = HALO_PX
    runs, start = [], rows[0]
    for prev, row in zip(rows, rows[1:]):
        if row - prev > 2 * hy + BAND_GAP_PX:
            runs.append((start, prev))
            start = row
    runs.append((start, rows[-1]))
    boxes = []
    for r0, r1 in runs:
        cols = torch.nonzero(darkest[r0:r1 + 1].amin(dim=0) < INK_LEVEL).flatten()
        boxes.append((max(0, r0 - hy) // stride * stride, max(0, int(cols[0]) - hx) // stride * stride,
                      min(H, r1 + 1 + hy), min(W, int(cols[-1]) + 1 + hx)))
    return boxes


def ink_box(batch: torch.Tensor, stride: int) -> tuple[int, int, int, int]:
    """The one box around all of :func:`ink_frames`: the ink plus the receptive field."""
    boxes = ink_frames(batch, stride)
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def fuse_conv_bn(model: nn.Module) -> nn.Module:
    """Fold every eval-mode ``Sequential(Conv2d(bias=False), BatchNorm2d)`` into one Conv2d (inference)."""
    for name, mod in list(model.named_children()):
        if (isinstance(mod, nn.Sequential) and len(mod) == 2 and isinstance(mod[0], nn.Conv2d)
                and isinstance(mod[1], nn.BatchNorm2d)):
            conv, bn = mod[0], mod[1]
            fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                              conv.dilation, conv.groups, bias=True)
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            fused.weight.data = conv.weight.data * scale.reshape(-1, 1, 1, 1)
            fused.bias.data = bn.bias.data - bn.running_mean * scale
            setattr(model, name, fused)
        else:
            fuse_conv_bn(mod)
    return model


def weights_fingerprint(wfile: Path, tfile: Path) -> str:
    """sha256 of what the features depend on: the tensors, the config and the tokenizer — not the
    ``extra`` metadata (threshold, verify weight, training record), so recalibrating the threshold leaves
    indexes built with these weights valid."""
    raw = Path(wfile).read_bytes()
    n = int.from_bytes(raw[:8], "little")  # safetensors: header length, JSON header, tensor bytes
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", None) or {}
    h = hashlib.sha256()
    h.update(json.dumps(header, sort_keys=True).encode())
    h.update(meta.get("config", "").encode())
    h.update(raw[8 + n:])
    h.update(Path(tfile).read_bytes())
    return h.hexdigest()


def load_state(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Copy weights key by key; a loud error lists missing/unexpected keys and shape mismatches."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    bad_shape = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or bad_shape:
        lines = [f"mini weights {source} do not match the architecture:"]
        if missing:
            lines.append(f"  missing keys ({len(missing)}): {', '.join(missing[:20])}"
                         + (" ..." if len(missing) > 20 else ""))
        if unexpected:
            lines.append(f"  unexpected keys ({len(unexpected)}): {', '.join(unexpected[:20])}"
                         + (" ..." if len(unexpected) > 20 else ""))
        for k in bad_shape[:20]:
            lines.append(f"  shape of {k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}")
        lines.append("  (was the file written by another version of tokensearch? retrain with `tokensearch train`)")
        raise ValueError("\n".join(lines))
    with torch.no_grad():
        for k, v in own.items():
            v.copy_(state[k])


def save_weights(model: MiniModel, path: str | Path, extra: dict | None = None) -> None:
    """Write ``model`` as safetensors with its config and ``extra`` (threshold, training record) as metadata."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"config": json.dumps(asdict(model.cfg)), "extra": json.dumps(extra or {})}
    save_file(state, str(path), metadata=meta)
    os.chmod(path, 0o644)  # safetensors writes 0600; weights are meant to be shared


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], MiniConfig, dict]:
    from safetensors import safe_open

    state = {}
    with safe_open(str(path), framework="pt", device="cpu") as f:
        meta = f.metadata() or {}
        for k in f.keys():
            state[k] = f.get_tensor(k)
    cfg = MiniConfig.from_dict(json.loads(meta.get("config", "{}")))
    extra = json.loads(meta.get("extra", "{}"))
    return state, cfg, extra


class MiniEncoder:
    """:class:`~tokensearch.tokenocr_model.interface.TokenEncoder` for the mini model."""

    def __init__(self, model: MiniModel, tokenizer: MiniTokenizer, name: str = "mini", fingerprint: str = "",
                 extra: dict | None = None, device: str = "cpu", dtype: str = "float32", batch_size: int = 1,
                 int8_pages: CalibrationPages | None = None):
        self.cfg = model.cfg
        self.tokenizer = tokenizer
        self.files: list[Path] = []  # weight + tokenizer files (set by load_mini)
        self.device = resolve_device(device)
        # int8: asked for, or "auto" on a CPU with int8 dot products (VNNI), where it beats bf16. Elsewhere on
        # a CPU: bf16 where native, else float32 with its 3x3 convs by Winograd, which there beats both int8
        # and oneDNN float32 (BENCHMARKS.md, "Precision and dtype"). int8 measures activation ranges on
        # ``int8_pages`` (the engine passes the built-in sample pages): without them "auto" never picks it
        wanted = str(dtype).lower()
        cpu = self.device.type == "cpu"
        self.int8 = wanted == "int8" or (wanted == "auto" and cpu and cpu_has_int8_dot() and int8_pages is not None)
        if self.int8 and not cpu:
            raise ValueError("dtype int8 runs on the CPU only; use --dtype auto on a GPU")
        if self.int8 and int8_pages is None:
            raise ValueError("dtype int8 needs pages to calibrate on: pass int8_pages (e.g. "
                             "tokensearch.samples.calibration_pages, as the engine does)")
        self._int8_pages = int8_pages
        self.dtype = torch.float32 if self.int8 else resolve_dtype(dtype, self.device)
        self.winograd = cpu and not self.int8 and self.dtype == torch.float32 and winograd_available()
        self._int8_net: nn.Module | None = None  # built at the first page encoded (~1-2 s)
        self._paper_cell: tuple[np.ndarray, float] | None = None
        self.batch_size = batch_size
        self.dpi = float(self.cfg.dpi)
        model.eval()
        with torch.no_grad():
            self._vocab = self._compose_vocab(model.composer).numpy()  # (V, D) cached token vectors
        self.vision = fuse_conv_bn(model.vision).to(self.device, self.dtype).eval()
        if self.device.type == "cpu":  # oneDNN convs are fastest in NHWC on CPUs
            self.vision = self.vision.to(memory_format=torch.channels_last)
        self.composer = model.composer
        extra = dict(extra or {})
        extra.setdefault("threshold", 0.5)
        extra.setdefault("stride", self.cfg.stride)
        extra.setdefault("score", "mean over the query's tokens of the max cosine of the token at its matched cells")
        self.info = ModelInfo(name=name, family="mini", fingerprint=fingerprint, dim=self.cfg.dim, extra=extra)

    def _compose_vocab(self, composer: TokenComposer, chunk: int = 2048) -> torch.Tensor:
        texts = [piece_to_text(p) for p in self.tokenizer.pieces()]
        return torch.cat([composer(texts[i:i + chunk]).float().cpu() for i in range(0, len(texts), chunk)])

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
                full[:, gy:gy + ch, gx:gx + cw] = feats
                full_text[:, gy:gy + ch, gx:gx + cw] = text
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
        feats = F.normalize(feats[:, :, :h, :w].float(), dim=1).permute(0, 2, 3, 1).cpu().numpy()
        return feats, torch.sigmoid(text[:, :h, :w].float()).cpu().numpy()

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
            self._int8_net = quantize_int8(self.vision,
                                           int8_calibration_samples(self._int8_pages(self.dpi), self.cfg.stride))
        return self._int8_net

    # --- text ------------------------------------------------------------------------------------------
    def tokenize(self, text: str) -> list[Token]:
        return self.tokenizer.tokenize(text)

    def token_vectors(self, ids: Sequence[int]) -> np.ndarray:
        ids = np.asarray(list(ids), dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= len(self._vocab)):
            raise IndexError(f"token id out of range 0..{len(self._vocab) - 1}")
        return self._vocab[ids].astype(np.float32, copy=True).reshape(len(ids), self.cfg.dim)

    def vocabulary(self) -> np.ndarray:
        return self._vocab

    def query_side(self) -> TableQueryEmbedder:
        """The torch-free query half (tokenizer + vocabulary vectors) the engine caches for fast searches."""
        return TableQueryEmbedder(self.info, self.tokenizer.tokenize, self._vocab, files_stamp(self.files),
                                  tuple(self.vocabulary_texts()))

    def vocabulary_texts(self) -> list[str]:
        return [piece_to_text(p) for p in self.tokenizer.pieces()]

    def embed_query(self, text: str) -> QueryTokens:
        tokens = self.tokenize(text)
        return QueryTokens(text=text, tokens=tokens, vectors=self.token_vectors([t.id for t in tokens]))

    @torch.no_grad()
    def embed_strings(self, strings: Sequence[str]) -> np.ndarray:
        """Vectors of arbitrary token strings (leading space = the space flag), even outside the vocabulary."""
        return self.composer(list(strings)).float().cpu().numpy()


def load_mini(path: str | Path | None = None, device: str = "cpu", dtype: str = "float32",
              int8_pages: CalibrationPages | None = None) -> MiniEncoder:
    """Load the mini model: shipped weights when ``path`` is None, else a directory (or .safetensors file).
    ``int8_pages``: what int8 inference calibrates on (see :class:`MiniEncoder`)."""
    wfile, tfile, name = mini_paths(path)
    if not wfile.is_file():
        raise FileNotFoundError(f"mini weights not found: {wfile} (train them with `tokensearch train --out DIR`"
                                " and use --model mini:DIR)")
    tokenizer = MiniTokenizer.from_file(tfile)
    state, cfg, extra = read_weights(wfile)
    model = MiniModel(cfg)
    load_state(model, state, str(wfile))
    enc = MiniEncoder(model, tokenizer, name=name, fingerprint=weights_fingerprint(wfile, tfile), extra=extra,
                      device=device, dtype=dtype, int8_pages=int8_pages)
    enc.files = [wfile, tfile]
    return enc

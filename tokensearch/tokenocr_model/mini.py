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

This module is the architecture, what it reads (a grey page padded to the stride) and its weight files;
the CPU fast paths (conv-BN folding, Winograd, int8, computing only the bands of text) are in
:mod:`.mini_fast`, the engine's :class:`~.interface.TokenEncoder` in :mod:`.mini_encoder`.

Weights: ``weights/mini.safetensors`` + ``weights/tokenizer.json`` in this package (or a directory
given as ``mini:/dir``); ``metadata["config"]`` holds the :class:`MiniConfig` as JSON and
``metadata["extra"]`` the calibrated score threshold and training record.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from ..imaging import gray_levels

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
        self.mlp = nn.Sequential(
            nn.LayerNorm(cfg.char_dim),
            nn.Linear(cfg.char_dim, 2 * cfg.char_dim),
            nn.GELU(),
            nn.Linear(2 * cfg.char_dim, cfg.dim),
        )
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
        return (
            torch.tensor(ids, dtype=torch.long),
            torch.tensor(owner, dtype=torch.long),
            torch.tensor(lens, dtype=torch.long),
            torch.tensor(space, dtype=torch.long),
        )

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


def conv_bn(
    cin: int, cout: int, k: int | tuple[int, int] = 1, stride: int = 1, dilation: int | tuple[int, int] = 1
) -> nn.Sequential:
    """Conv (no bias) + BatchNorm; folded into one biased conv for inference by :func:`.mini_fast.fuse_conv_bn`."""
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
# input: a grey page, padded to the stride
# ------------------------------------------------------------------------------------------------------


def image_to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL image (any mode) -> (1, H, W) float32 in [0, 1], read by :func:`tokensearch.imaging.gray_levels`."""
    return torch.from_numpy(gray_levels(img))[None]


def pad_to_stride(x: torch.Tensor, stride: int) -> torch.Tensor:
    """(B, 1, H, W) -> padded with white at right/bottom to multiples of ``stride``."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % stride, (-w) % stride
    return F.pad(x, (0, pw, 0, ph), value=1.0) if (ph or pw) else x


# ------------------------------------------------------------------------------------------------------
# weight files (safetensors: tensors + the config and extra metadata as JSON)
# ------------------------------------------------------------------------------------------------------


def load_state(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Copy weights key by key; a loud error lists missing/unexpected keys and shape mismatches."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    bad_shape = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or bad_shape:
        lines = [f"mini weights {source} do not match the architecture:"]
        if missing:
            lines.append(
                f"  missing keys ({len(missing)}): {', '.join(missing[:20])}" + (" ..." if len(missing) > 20 else "")
            )
        if unexpected:
            lines.append(
                f"  unexpected keys ({len(unexpected)}): {', '.join(unexpected[:20])}"
                + (" ..." if len(unexpected) > 20 else "")
            )
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

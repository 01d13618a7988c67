"""The official TokenOCR model (TokenFD, Guan et al. 2025), readable top to bottom.

    page ──dynamic tiling──▶ tiles (B, 3, 448, 448)
         ──InternViT-300M──▶ (B, 1 + 32*32, 1024)   pre-norm blocks, layer scale, CLS token, no final norm
         ──drop CLS, (B, 1024, 32, 32)
         ──upsample──▶ (B, 1024, 128, 128)           2 x [ConvTranspose2d k4 s2 p1 (no bias), BatchNorm]
         ──ocr_mlp──▶ (B, 128*128, D)                 LayerNorm, Linear(1024→D), GELU, Linear(D→D)
         ──stitch tiles row-major──▶ page grid (128*rows, 128*cols, D)

A query token's vector is a row of the InternLM2 input-embedding table ``tok_embeddings.weight``
(D = 2048 bilingual, 4096 English); similarity is the cosine of unit vectors. Older "no-upsample"
checkpoints apply ``ocr_mlp`` to the 32x32 ViT grid directly (detected by the absence of
``upsample.0.weight``). Facts and key names follow the public TokenFD / InternVL code; attention uses
``torch.nn.functional.scaled_dot_product_attention`` (same result as flash-attn, which it uses on GPUs
that have it).

Checked once against the public code (not shipped, not a test dependency): on a tiny checkpoint the
InternVisionModel hidden states agree to 5e-7 (fp32, native and interpolated position grids) and the
upsample + ocr_mlp head to 1.2e-6; ``tiling.dynamic_preprocess`` gives pixel-identical tiles.

:func:`load_tokenocr` builds a :class:`TokenOCREncoder` (the engine's ``TokenEncoder``) from a local
checkpoint folder; see ``docs/tokenocr.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from . import checkpoint as ckpt
from . import tiling
from .devices import autocast, resolve_device, resolve_dtype
from .interface import FeatureGrid, ModelInfo, QueryTokens, Token
from .sp_tokenizer import InternLM2Tokenizer

# ------------------------------------------------------------------------------------------------
# config
# ------------------------------------------------------------------------------------------------


@dataclass
class VisionConfig:
    """``vision_config`` of config.json (InternViT). Defaults are InternViT-300M-448px's."""

    hidden_size: int = 1024
    num_hidden_layers: int = 24
    num_attention_heads: int = 16
    intermediate_size: int = 4096
    patch_size: int = 14
    image_size: int = 448
    layer_norm_eps: float = 1e-6
    qkv_bias: bool = True
    qk_normalization: bool = False
    norm_type: Literal["layer_norm", "rms_norm"] = "layer_norm"
    use_flash_attn: bool = True  # recorded only: SDPA picks flash kernels itself where available


@dataclass
class TokenOCRConfig:
    """The fields of a TokenOCR checkpoint's config.json that the token-level path uses."""

    vision: VisionConfig = field(default_factory=VisionConfig)
    hidden_size: int = 4096  # D: width of the token table and of the cell features
    vocab_size: int = 92553  # rows of tok_embeddings (InternLM2 92544 + 9 InternVL special tokens)
    force_image_size: int | None = 448  # tile size (falls back to vision.image_size)
    select_layer: int = -1  # ViT hidden state fed to the head (-1 = last layer)
    use_thumbnail: bool = True  # recorded; the thumbnail's features are never used on this path
    min_dynamic_patch: int = 1  # recorded (training-time); inference tiling uses 1..12 tiles
    max_dynamic_patch: int = 12
    upsample: bool = True  # released checkpoints: True; older ones: False (no upsample.* keys)

    @property
    def tile_size(self) -> int:
        return self.force_image_size or self.vision.image_size

    @property
    def vit_grid(self) -> int:
        return self.tile_size // self.vision.patch_size  # 448 / 14 = 32

    @property
    def cells_per_tile(self) -> int:
        return self.vit_grid * (4 if self.upsample else 1)  # 128 (upsample) or 32

    @property
    def n_layers_used(self) -> int:
        """How many ViT blocks run: ``hidden_states[select_layer]`` where index 0 is the embeddings."""
        n = self.vision.num_hidden_layers
        return self.select_layer if self.select_layer >= 0 else n + 1 + self.select_layer

    @classmethod
    def from_json(cls, cfg: dict, upsample: bool) -> TokenOCRConfig:
        """Validate config.json; a missing or out-of-range field raises an error naming it."""
        vc = cfg.get("vision_config")
        if not isinstance(vc, dict):
            raise ckpt.CheckpointError("config.json: field 'vision_config' is missing or not an object")
        v = VisionConfig(
            hidden_size=_int(vc, "hidden_size", "vision_config."),
            num_hidden_layers=_int(vc, "num_hidden_layers", "vision_config."),
            num_attention_heads=_int(vc, "num_attention_heads", "vision_config."),
            intermediate_size=_int(vc, "intermediate_size", "vision_config."),
            patch_size=_int(vc, "patch_size", "vision_config."),
            image_size=_int(vc, "image_size", "vision_config."),
            layer_norm_eps=_float(vc, "layer_norm_eps", "vision_config.", lo=0.0, hi=1e-2),
            qkv_bias=_bool(vc, "qkv_bias", "vision_config."),
            qk_normalization=_bool(vc, "qk_normalization", "vision_config.", default=False),
            norm_type=_choice(vc, "norm_type", "vision_config.", ("layer_norm", "rms_norm"), default="layer_norm"),
            use_flash_attn=_bool(vc, "use_flash_attn", "vision_config.", default=True),
        )
        act = vc.get("hidden_act", "gelu")
        if act != "gelu":
            raise ckpt.CheckpointError(f"config.json: field 'vision_config.hidden_act' must be 'gelu', got {act!r}")
        if v.hidden_size % v.num_attention_heads:
            raise ckpt.CheckpointError(
                f"config.json: field 'vision_config.num_attention_heads' ({v.num_attention_heads}) must divide "
                f"'vision_config.hidden_size' ({v.hidden_size})"
            )
        if v.hidden_size % 2:
            raise ckpt.CheckpointError("config.json: field 'vision_config.hidden_size' must be even")
        llm_cfg = cfg.get("llm_config")
        llm: dict = llm_cfg if isinstance(llm_cfg, dict) else {}
        c = cls(
            vision=v,
            hidden_size=_top_or_llm(cfg, llm, "hidden_size"),
            vocab_size=_top_or_llm(cfg, llm, "vocab_size"),
            force_image_size=_int(cfg, "force_image_size", "", default=None),
            select_layer=_int(cfg, "select_layer", "", default=-1, positive=False),
            use_thumbnail=_bool(cfg, "use_thumbnail", "", default=True),
            min_dynamic_patch=_int(cfg, "min_dynamic_patch", "", default=1),
            max_dynamic_patch=_int(cfg, "max_dynamic_patch", "", default=12),
            upsample=upsample,
        )
        if c.tile_size % v.patch_size:
            raise ckpt.CheckpointError(
                f"config.json: field 'force_image_size' ({c.tile_size}) must be a multiple "
                f"of 'vision_config.patch_size' ({v.patch_size})"
            )
        if v.image_size % v.patch_size:
            raise ckpt.CheckpointError(
                f"config.json: field 'vision_config.image_size' ({v.image_size}) must be a "
                f"multiple of 'vision_config.patch_size' ({v.patch_size})"
            )
        if not -(v.num_hidden_layers + 1) <= c.select_layer <= v.num_hidden_layers:
            raise ckpt.CheckpointError(
                f"config.json: field 'select_layer' ({c.select_layer}) is out of range for {v.num_hidden_layers} layers"
            )
        if not 1 <= c.min_dynamic_patch <= c.max_dynamic_patch:
            raise ckpt.CheckpointError(
                "config.json: fields 'min_dynamic_patch'/'max_dynamic_patch' need 1 <= min <= max"
            )
        return c


_MISSING: Any = object()


def _get(d: dict, name: str, where: str, default: Any):
    val = d.get(name)
    if val is None:
        if default is _MISSING:
            raise ckpt.CheckpointError(f"config.json: required field '{where}{name}' is missing")
        return default
    return val


def _int(d: dict, name: str, where: str, default: Any = _MISSING, positive: bool = True) -> Any:
    val = _get(d, name, where, default)
    if val is None:
        return None
    if isinstance(val, bool) or not isinstance(val, int) or (positive and val <= 0):
        raise ckpt.CheckpointError(
            f"config.json: field '{where}{name}' must be a {'positive ' if positive else ''}integer, got {val!r}"
        )
    return val


def _top_or_llm(cfg: dict, llm: dict, name: str) -> int:
    """A top-level field (released checkpoints) or the same one in ``llm_config`` (raw training configs)."""
    if cfg.get(name) is None and llm.get(name) is None:
        raise ckpt.CheckpointError(f"config.json: required field '{name}' (or 'llm_config.{name}') is missing")
    return _int(cfg, name, "") if cfg.get(name) is not None else _int(llm, name, "llm_config.")


def _float(d: dict, name: str, where: str, lo: float, hi: float, default: Any = _MISSING) -> float:
    val = _get(d, name, where, default)
    if isinstance(val, bool) or not isinstance(val, (int, float)) or not lo < val <= hi:
        raise ckpt.CheckpointError(f"config.json: field '{where}{name}' must be a number in ({lo}, {hi}], got {val!r}")
    return float(val)


def _bool(d: dict, name: str, where: str, default: Any = _MISSING) -> bool:
    val = _get(d, name, where, default)
    if not isinstance(val, bool):
        raise ckpt.CheckpointError(f"config.json: field '{where}{name}' must be true or false, got {val!r}")
    return val


def _choice(d: dict, name: str, where: str, choices: tuple[str, ...], default: Any = _MISSING) -> Any:
    val = _get(d, name, where, default)
    if val not in choices:
        raise ckpt.CheckpointError(f"config.json: field '{where}{name}' must be one of {choices}, got {val!r}")
    return val


# ------------------------------------------------------------------------------------------------
# InternViT
# ------------------------------------------------------------------------------------------------


class RMSNorm(nn.Module):
    """InternRMSNorm (InternViT-6B); the 300M model uses LayerNorm."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


def make_norm(cfg: VisionConfig) -> nn.Module:
    if cfg.norm_type == "rms_norm":
        return RMSNorm(cfg.hidden_size, cfg.layer_norm_eps)
    return nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)


class VisionEmbeddings(nn.Module):
    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.grid = cfg.image_size // cfg.patch_size  # position table's native grid (32 at 448 px)
        self.class_embedding = nn.Parameter(torch.zeros(1, 1, cfg.hidden_size))
        self.patch_embedding = nn.Conv2d(3, cfg.hidden_size, kernel_size=cfg.patch_size, stride=cfg.patch_size)
        self.position_embedding = nn.Parameter(torch.zeros(1, 1 + self.grid**2, cfg.hidden_size))

    def positions(self, h: int, w: int) -> torch.Tensor:
        """(1, 1 + h*w, C) position table; the patch part bicubic-resized (in fp32) for other grids."""
        pos = self.position_embedding
        if (h, w) == (self.grid, self.grid):
            return pos
        cls_pos, patch_pos = pos[:, :1], pos[:, 1:]
        C = pos.shape[-1]
        patch_pos = patch_pos.float().reshape(1, self.grid, self.grid, C).permute(0, 3, 1, 2)  # (1, C, g, g)
        patch_pos = F.interpolate(patch_pos, size=(h, w), mode="bicubic", align_corners=False)
        patch_pos = patch_pos.reshape(1, C, h * w).permute(0, 2, 1).to(pos.dtype)  # (1, h*w, C)
        return torch.cat([cls_pos, patch_pos], dim=1)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.patch_embedding(pixels.to(self.patch_embedding.weight.dtype))  # (B, C, h, w)
        B, C, h, w = x.shape
        x = x.flatten(2).transpose(1, 2)  # (B, h*w, C)
        cls = self.class_embedding.expand(B, 1, C).to(x.dtype)
        x = torch.cat([cls, x], dim=1)  # (B, 1 + h*w, C)
        return x + self.positions(h, w).to(x.dtype)


class Attention(nn.Module):
    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.n_head = cfg.num_attention_heads
        self.qkv = nn.Linear(cfg.hidden_size, 3 * cfg.hidden_size, bias=cfg.qkv_bias)
        self.proj = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.qk_normalization = cfg.qk_normalization
        if cfg.qk_normalization:  # over all heads at once, as InternViT-6B does
            self.q_norm = RMSNorm(cfg.hidden_size, cfg.layer_norm_eps)
            self.k_norm = RMSNorm(cfg.hidden_size, cfg.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # 3 x (B, N, C)
        if self.qk_normalization:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k, v = (t.view(B, N, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, nh, N, hd)
        y = F.scaled_dot_product_attention(q, k, v)  # (B, nh, N, hd), scale 1/sqrt(hd)
        y = y.transpose(1, 2).reshape(B, N, C)
        return self.proj(y)


class MLP(nn.Module):
    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.fc1 = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.fc2 = nn.Linear(cfg.intermediate_size, cfg.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))  # exact (erf) GELU, as transformers' "gelu"


class Block(nn.Module):
    """Pre-norm transformer block with layer scale: x += ls1*attn(norm1(x)); x += ls2*mlp(norm2(x))."""

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.norm1 = make_norm(cfg)
        self.attn = Attention(cfg)
        self.ls1 = nn.Parameter(torch.ones(cfg.hidden_size))
        self.norm2 = make_norm(cfg)
        self.mlp = MLP(cfg)
        self.ls2 = nn.Parameter(torch.ones(cfg.hidden_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x)) * self.ls1
        x = x + self.mlp(self.norm2(x)) * self.ls2
        return x


class Encoder(nn.Module):
    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.num_hidden_layers))


class InternViT(nn.Module):
    """InternVisionModel: embeddings + blocks, no final norm (keys ``vision_model.*``)."""

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.embeddings = VisionEmbeddings(cfg)
        self.encoder = Encoder(cfg)

    def forward(self, pixels: torch.Tensor, n_layers: int) -> torch.Tensor:
        """Hidden state after ``n_layers`` blocks (``hidden_states[n_layers]``): (B, 1 + h*w, C)."""
        x = self.embeddings(pixels)
        for block in self.encoder.layers[:n_layers]:
            x = block(x)
        return x


# ------------------------------------------------------------------------------------------------
# TokenOCR head
# ------------------------------------------------------------------------------------------------


class TokenOCR(nn.Module):
    """InternViT + (optional) 4x transposed-conv upsampler + ``ocr_mlp`` into the token-embedding space."""

    def __init__(self, cfg: TokenOCRConfig):
        super().__init__()
        self.cfg = cfg
        C, D = cfg.vision.hidden_size, cfg.hidden_size
        self.vision_model = InternViT(cfg.vision)
        self.upsample: nn.Sequential | None
        if cfg.upsample:  # widths 1024 -> 512 -> 1024 in the released model, i.e. C -> C/2 -> C
            self.upsample = nn.Sequential(
                nn.ConvTranspose2d(C, C // 2, kernel_size=4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(C // 2),
                nn.ConvTranspose2d(C // 2, C, kernel_size=4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(C),
            )
        else:
            self.upsample = None
        self.ocr_mlp = nn.Sequential(nn.LayerNorm(C), nn.Linear(C, D), nn.GELU(), nn.Linear(D, D))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Tiles (B, 3, S, S) -> cell features (B, cells, cells, D), not normalised."""
        return self.head(self.vision_model(pixels, self.cfg.n_layers_used))

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        """ViT hidden state (B, 1 + g*g, C) -> cell features (B, cells, cells, D)."""
        x = hidden[:, 1:]  # drop CLS: (B, g*g, C)
        B, N, C = x.shape
        g = math.isqrt(N)
        if self.upsample is not None:
            x = x.transpose(1, 2).reshape(B, C, g, g)  # (B, C, g, g)
            x = self.upsample(x)  # (B, C, 4g, 4g)
            g = x.shape[-1]
            x = x.flatten(2).transpose(1, 2)  # (B, 16*g*g, C)
        x = self.ocr_mlp(x)  # (B, cells*cells, D)
        return x.reshape(B, g, g, -1)  # (B, cells, cells, D)


# ------------------------------------------------------------------------------------------------
# loading
# ------------------------------------------------------------------------------------------------

TOKEN_TABLE_KEYS = ("tok_embeddings.weight", "language_model.model.tok_embeddings.weight")
# training-only tensors of released / raw checkpoints that the token-level path does not use
IGNORED_KEYS = ("t_prime", "b", "mlp1.*", "language_model.*")
OPTIONAL_KEYS = ("*.num_batches_tracked",)


def expected_shapes(cfg: TokenOCRConfig) -> dict[str, tuple[int, ...]]:
    """Checkpoint name -> shape of every tensor the model needs (built on the meta device: no memory)."""
    with torch.device("meta"):
        model = TokenOCR(cfg)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def load_model(folder: str | Path) -> tuple[TokenOCR, torch.Tensor, dict]:
    """Build the model from a checkpoint folder, strictly: returns ``(model on CPU, token table, config.json)``.

    Every tensor of the architecture must be present with its shape; every other tensor must be one of
    the documented training-only ones (``t_prime``, ``b``, ``mlp1.*``, ``language_model.*`` apart from the
    token table) — anything else is an error listing the names.
    """
    folder = Path(folder)
    raw_cfg = ckpt.read_config(folder)
    files = ckpt.weight_files(folder)
    shapes = ckpt.tensor_shapes(files)
    cfg = TokenOCRConfig.from_json(raw_cfg, upsample="upsample.0.weight" in shapes)

    table_key = next((k for k in TOKEN_TABLE_KEYS if k in shapes), None)
    if table_key is None:
        raise ckpt.CheckpointError(f"{folder}: no token table; expected one of {', '.join(TOKEN_TABLE_KEYS)}")
    want_table = (cfg.vocab_size, cfg.hidden_size)
    if tuple(shapes[table_key]) != want_table:
        raise ckpt.CheckpointError(
            f"{table_key}: checkpoint {tuple(shapes[table_key])} vs config.json "
            f"(vocab_size, hidden_size) = {want_table}"
        )
    found = {k: v for k, v in shapes.items() if k != table_key}
    expected = expected_shapes(cfg)
    ckpt.check_state_dict(found, expected, ignored=IGNORED_KEYS, optional=OPTIONAL_KEYS, source=str(folder))

    names = {k: k for k in expected if k in found}
    names[table_key] = "__table__"
    tensors = ckpt.load_tensors(files, names)
    table = tensors.pop("__table__")
    for k in expected:  # absent optional BN counters
        if k not in tensors:
            tensors[k] = torch.zeros((), dtype=torch.long)
    with torch.device("meta"):
        model = TokenOCR(cfg)
    model.load_state_dict(tensors, strict=True, assign=True)
    return model.eval(), table, raw_cfg


# ------------------------------------------------------------------------------------------------
# the engine's encoder
# ------------------------------------------------------------------------------------------------

# Default score threshold (absolute cosine) — the official demo's binarisation threshold
# (`get_similarity_map(..., min_max=False, threshold=0.2)` in TokenFD's utils.py).
DEFAULT_THRESHOLD = 0.2
# text probability from the space token: the per-cell BCE of training uses the cosine itself as the
# logit, so cos(cell, ' ') > 0 means "background" for -seg checkpoints; k sharpens the sigmoid.
SPACE_LOGIT_SCALE = 10.0


class TokenOCREncoder:
    """The official TokenOCR as a :class:`~tokensearch.tokenocr_model.interface.TokenEncoder`.

    ``cell_pool`` averages ``p x p`` cells (unit vectors, then re-normalised) before features leave the
    model: a 12-tile page has 196,608 cells at ``p=1``; ``p=2`` (default for upsample checkpoints) gives
    7 px cells at 150 dpi, still smaller than a glyph. ``text`` is max-pooled so thin strokes survive.

    ``text_reference``: ``"space"`` (default; -seg checkpoints, which were trained with the space token
    ``' '`` marking background) gives ``text = sigmoid(-10 * cos(cell, e_space))``; ``"contrast"`` (for
    checkpoints without that training) marks cells whose feature departs from the tile's dominant
    (background) direction by more than 3 robust standard deviations.
    """

    grey = False  # InternViT reads RGB tiles
    dpi = 150.0  # a letter page at 150 dpi is ~1275x1650 px, close to its 3x4-tile canvas (1344x1792)

    def __init__(
        self,
        model: TokenOCR,
        table: torch.Tensor,
        tokenizer: InternLM2Tokenizer,
        *,
        name: str,
        fingerprint: str,
        device: torch.device,
        dtype: torch.dtype,
        cell_pool: int | None = None,
        max_tiles: int = 12,
        vit_batch: int = 48,
        head_batch: int = 4,
        text_reference: Literal["space", "contrast"] = "space",
        feature_dtype: npt.DTypeLike = np.float16,
    ):
        cfg = model.cfg
        if tokenizer.vocab_size > table.shape[0]:
            raise ckpt.CheckpointError(
                f"tokenizer has {tokenizer.vocab_size} tokens but tok_embeddings only {table.shape[0]} rows"
            )
        cell_pool = cell_pool if cell_pool is not None else (2 if cfg.upsample else 1)
        if cell_pool < 1 or cfg.cells_per_tile % cell_pool:
            raise ValueError(f"cell_pool={cell_pool} must divide the {cfg.cells_per_tile} cells of a tile")
        if max_tiles < 1 or vit_batch < 1 or head_batch < 1:
            raise ValueError(
                f"max_tiles, vit_batch and head_batch must be >= 1, got {max_tiles}, {vit_batch}, {head_batch}"
            )
        if text_reference not in ("space", "contrast"):
            raise ValueError(f"text_reference must be 'space' or 'contrast', got {text_reference!r}")
        self.model = model
        self.cfg = cfg
        self.table = table  # (V, D) on CPU, stored dtype
        self.tokenizer = tokenizer
        self.device, self.dtype = device, dtype
        self.cell_pool, self.max_tiles = cell_pool, max_tiles
        self.vit_batch, self.head_batch = vit_batch, head_batch
        self.text_reference = text_reference
        self.feature_dtype = np.dtype(feature_dtype)
        self.space_vector = torch.from_numpy(self.token_vectors([tokenizer.space_id])[0]).to(device)  # (D,) fp32
        self.info = ModelInfo(
            name=name,
            family="tokenocr",
            fingerprint=fingerprint,
            dim=cfg.hidden_size,
            extra={
                "threshold": DEFAULT_THRESHOLD,
                "cell_px": cfg.tile_size / cfg.cells_per_tile * cell_pool,  # tile px per cell (3.5*pool)
                "cell_pool": cell_pool,
                "cells_per_tile": cfg.cells_per_tile // cell_pool,
                "tile_px": cfg.tile_size,
                "max_tiles": max_tiles,
                "variant": "upsample" if cfg.upsample else "no-upsample",
                "text_reference": text_reference,
                "config": {k: v for k, v in asdict(cfg).items() if k != "vision"} | {"vision": asdict(cfg.vision)},
            },
        )

    # -- geometry ---------------------------------------------------------------------------------
    def grid_shape(self, width: int, height: int) -> tuple[int, int]:
        return tiling.grid_shape(
            width, height, self.cfg.cells_per_tile // self.cell_pool, 1, self.max_tiles, self.cfg.tile_size
        )

    # -- text side --------------------------------------------------------------------------------
    def tokenize(self, text: str) -> list[Token]:
        return self.tokenizer.tokenize(text)

    def token_vectors(self, ids: Sequence[int]) -> np.ndarray:
        idx = torch.as_tensor(list(ids), dtype=torch.long)
        if idx.numel() and (idx.min() < 0 or idx.max() >= self.table.shape[0]):
            raise ValueError(f"token id out of range 0..{self.table.shape[0] - 1}: {list(ids)}")
        rows = self.table.index_select(0, idx).float()  # (T, D)
        return F.normalize(rows, dim=-1).numpy()

    def vocabulary(self) -> np.ndarray:
        """(V, D) unit vectors of every row of tok_embeddings (the verification's competitors)."""
        return self.token_vectors(range(self.table.shape[0]))

    def vocabulary_texts(self) -> list[str]:
        """Every row's text (``▁`` as a space); rows the tokenizer has no piece for are empty."""

        def text(i: int) -> str:
            try:
                return self.tokenizer.decode_piece(i)
            except ValueError:
                return ""

        return [text(i) for i in range(self.table.shape[0])]

    def embed_query(self, text: str) -> QueryTokens:
        """Official query rule; then bare-space tokens (``▁``, e.g. before digits in ``"invoice 2020"``)
        are dropped when other tokens remain: in -seg checkpoints ``' '`` is the background class."""
        tokens = self.tokenizer.encode_query(text)
        content = [t for t in tokens if t.id != self.tokenizer.space_id]
        tokens = content or tokens
        vectors = self.token_vectors([t.id for t in tokens]) if tokens else np.zeros((0, self.info.dim), np.float32)
        return QueryTokens(text=text, tokens=tokens, vectors=vectors)

    # -- image side -------------------------------------------------------------------------------
    def _text_probability(self, unit: torch.Tensor) -> torch.Tensor:
        """(B, h, w, D) unit features -> (B, h, w) float32 probability that a cell shows text."""
        if self.text_reference == "space":
            cos_space = unit.float() @ self.space_vector  # (B, h, w)
            return torch.sigmoid(-SPACE_LOGIT_SCALE * cos_space)
        B = unit.shape[0]
        flat = unit.float().reshape(B, -1, unit.shape[-1])  # (B, N, D)
        mean = F.normalize(flat.mean(dim=1), dim=-1)  # (B, D): the tile's dominant (background) direction
        dist = 1.0 - torch.einsum("bnd,bd->bn", flat, mean)  # (B, N)
        med = dist.median(dim=1, keepdim=True).values
        mad = (dist - med).abs().median(dim=1, keepdim=True).values * 1.4826 + 1e-6
        return torch.sigmoid((dist - med) / mad - 3.0).reshape(unit.shape[:3])

    def _postprocess(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, c, c, D) raw cell features -> pooled unit features (B, c/p, c/p, D) and text (B, c/p, c/p)."""
        unit = F.normalize(feats.float(), dim=-1)  # (B, c, c, D)
        text = self._text_probability(unit)  # (B, c, c)
        p = self.cell_pool
        if p > 1:
            unit = F.avg_pool2d(unit.permute(0, 3, 1, 2), p).permute(0, 2, 3, 1)  # (B, c/p, c/p, D)
            unit = F.normalize(unit, dim=-1)
            text = F.max_pool2d(text.unsqueeze(1), p).squeeze(1)  # (B, c/p, c/p)
        out_dtype = torch.float16 if self.feature_dtype == np.float16 else torch.float32
        return unit.to(out_dtype), text

    @torch.inference_mode()
    def encode_tiles(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised tiles (N, 3, S, S) on any device -> (features (N, c, c, D), text (N, c, c)) on device.

        ViT in batches of ``vit_batch`` tiles (48 = the default 4 pages x 12 tiles in one call), head +
        post-processing in batches of ``head_batch`` tiles (the 16x upsampled maps are the big tensors);
        results stay on the device (no host synchronisation inside the loop).
        """
        feats, texts = [], []
        for i in range(0, pixels.shape[0], self.vit_batch):
            x = pixels[i : i + self.vit_batch].to(self.device, self.dtype, non_blocking=True)
            with autocast(self.device, self.dtype):
                h = self.model.vision_model(x, self.cfg.n_layers_used)  # (b, 1 + g*g, C)
            for j in range(0, h.shape[0], self.head_batch):
                with autocast(self.device, self.dtype):
                    f = self.model.head(h[j : j + self.head_batch])  # (b', c, c, D)
                unit, text = self._postprocess(f)  # in fp32, outside autocast
                feats.append(unit)
                texts.append(text)
        return torch.cat(feats), torch.cat(texts)

    def encode_pages(self, images: Sequence[Image.Image]) -> list[FeatureGrid]:
        """All tiles of all ``images`` through the model together; one grid per image, stitched row-major."""
        if not images:
            return []
        grids, tiles = [], []
        for img in images:
            t, grid = tiling.dynamic_preprocess(img, 1, self.max_tiles, self.cfg.tile_size, use_thumbnail=False)
            tiles.extend(t)  # the thumbnail is never computed: its features are discarded by TokenOCR
            grids.append(grid)
        pixels = torch.from_numpy(tiling.normalize_tiles(tiles))  # (N, 3, S, S)
        if self.device.type == "cuda":
            pixels = pixels.pin_memory()
        feats, text = self.encode_tiles(pixels)
        out, start = [], 0
        per_page = []
        for cols, rows in grids:
            n = cols * rows
            per_page.append(
                (
                    tiling.stitch_tiles(feats[start : start + n], cols, rows),
                    tiling.stitch_tiles(text[start : start + n], cols, rows),
                )
            )
            start += n
        for page_feats, page_text in per_page:  # the only device -> host copies
            out.append(FeatureGrid(features=page_feats.cpu().numpy(), text=page_text.float().cpu().numpy()))
        return out


def load_tokenocr(
    path: str | Path,
    device: str = "cpu",
    dtype: str = "float32",
    *,
    cell_pool: int | None = None,
    max_tiles: int = 12,
    text_reference: Literal["space", "contrast"] = "space",
    vit_batch: int = 48,
    head_batch: int = 4,
) -> TokenOCREncoder:
    """Load a local TokenOCR / TokenFD checkpoint folder as a TokenEncoder (weights read on CPU, then moved)."""
    folder = Path(path).expanduser()
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    model, table, _ = load_model(folder)
    tokenizer = InternLM2Tokenizer.from_checkpoint(folder)
    files = ckpt.weight_files(folder)
    extra = [
        folder / name for name in ("config.json", "tokenizer.model", "added_tokens.json") if (folder / name).is_file()
    ]
    fp = ckpt.fingerprint(files, extra)
    model = model.to(device=dev, dtype=dt)
    return TokenOCREncoder(
        model,
        table,
        tokenizer,
        name=f"tokenocr:{path}",
        fingerprint=fp,
        device=dev,
        dtype=dt,
        cell_pool=cell_pool,
        max_tiles=max_tiles,
        vit_batch=vit_batch,
        head_batch=head_batch,
        text_reference=text_reference,
    )

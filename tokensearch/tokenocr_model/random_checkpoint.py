"""Random TokenOCR checkpoints in the official on-disk layout: for tests, benchmarks, and trying the
pipeline where the released weights are not at hand.

The key names below are written out by hand from the public TokenFD/InternVL code (not derived from our
model), so a naming mistake in ``tokenocr.py`` makes the loading tests fail. Any width works: the tests
use tiny ones (ViT width 32, 56 px tiles), ``bench/gpu_check.py`` the full InternViT-300M with D = 2048
and InternLM2's 92,553-row token table. The tokenizer is a SentencePiece BPE model trained on the given
sentences, configured like InternLM2's (no dummy prefix, identity normalisation, digits split, byte
fallback); its few hundred pieces are the first rows of the table, InternVL's 9 special tokens the last.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import sentencepiece as spm
import torch
from safetensors.torch import save_file

# InternVL's special tokens, in the order the chat model appends them to the vocabulary
SPECIAL_TOKENS = ["<img>", "</img>", "<IMG_CONTEXT>", "<quad>", "</quad>", "<ref>", "</ref>", "<box>", "</box>"]
# InternViT-300M-448px (TokenOCR's vision tower) and InternLM2's vocabulary with those 9 tokens
INTERNVIT_300M = dict(
    hidden_size=1024,
    num_hidden_layers=24,
    num_attention_heads=16,
    intermediate_size=4096,
    patch_size=14,
    image_size=448,
)
INTERNLM2_VOCAB = 92553


def train_sentencepiece(path: Path, sentences: Sequence[str], vocab_size: int = 320) -> int:
    """Write an InternLM2-like SentencePiece model trained on ``sentences`` to ``path``; returns its pieces."""
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(sentences) * 10),
        model_writer=buf,
        vocab_size=vocab_size,
        model_type="bpe",
        add_dummy_prefix=False,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        split_digits=True,
        byte_fallback=True,
        character_coverage=1.0,
        hard_vocab_limit=False,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        minloglevel=2,
        num_threads=1,
    )
    path.write_bytes(buf.getvalue())
    return spm.SentencePieceProcessor(model_file=str(path)).get_piece_size()


def official_state_dict(
    vision: dict,
    D: int,
    vocab: int,
    upsample: bool,
    seed: int = 0,
    raw_training_names: bool = False,
    dtype: torch.dtype = torch.float32,
) -> dict[str, torch.Tensor]:
    """Random tensors under the official names (released layout, or the raw training layout).

    Each tensor is drawn in float32 and cast to ``dtype`` at once (the same values as casting afterwards,
    without holding the full-size model twice)."""
    g = torch.Generator().manual_seed(seed)
    C, L, M, P = vision["hidden_size"], vision["num_hidden_layers"], vision["intermediate_size"], vision["patch_size"]
    n_pos = 1 + (vision["image_size"] // P) ** 2

    def rnd(*shape, scale=None, shift=0.0):
        fan_in = shape[-1] if len(shape) > 1 else 1
        x = torch.randn(*shape, generator=g).mul_(scale if scale is not None else fan_in**-0.5)
        return (x.add_(shift) if shift else x).to(dtype)

    def one(n):  # LayerNorm / BatchNorm weights near 1
        return rnd(n, scale=0.1, shift=1.0)

    sd: dict[str, torch.Tensor] = {
        "vision_model.embeddings.class_embedding": rnd(1, 1, C, scale=0.02),
        "vision_model.embeddings.patch_embedding.weight": rnd(C, 3, P, P, scale=(3 * P * P) ** -0.5),
        "vision_model.embeddings.patch_embedding.bias": rnd(C, scale=0.02),
        "vision_model.embeddings.position_embedding": rnd(1, n_pos, C, scale=0.02),
    }
    for i in range(L):
        p = f"vision_model.encoder.layers.{i}."
        sd |= {
            p + "attn.qkv.weight": rnd(3 * C, C),
            p + "attn.qkv.bias": rnd(3 * C, scale=0.02),
            p + "attn.proj.weight": rnd(C, C),
            p + "attn.proj.bias": rnd(C, scale=0.02),
            p + "mlp.fc1.weight": rnd(M, C),
            p + "mlp.fc1.bias": rnd(M, scale=0.02),
            p + "mlp.fc2.weight": rnd(C, M),
            p + "mlp.fc2.bias": rnd(C, scale=0.02),
            p + "norm1.weight": one(C),
            p + "norm1.bias": rnd(C, scale=0.02),
            p + "norm2.weight": one(C),
            p + "norm2.bias": rnd(C, scale=0.02),
            p + "ls1": rnd(C, scale=0.01, shift=0.1),
            p + "ls2": rnd(C, scale=0.01, shift=0.1),
        }
    if upsample:
        for idx, (cin, cout) in ((0, (C, C // 2)), (2, (C // 2, C))):
            # ConvTranspose2d weights are (in, out, k, k)
            sd[f"upsample.{idx}.weight"] = rnd(cin, cout, 4, 4, scale=(cin * 4) ** -0.5)
            bn = f"upsample.{idx + 1}."
            sd |= {
                bn + "weight": one(cout),
                bn + "bias": rnd(cout, scale=0.1),
                bn + "running_mean": rnd(cout, scale=0.1),
                bn + "running_var": torch.rand(cout, generator=g).add_(1).to(dtype),
                bn + "num_batches_tracked": torch.tensor(1000, dtype=torch.long),
            }
    sd |= {
        "ocr_mlp.0.weight": one(C),
        "ocr_mlp.0.bias": rnd(C, scale=0.02),
        "ocr_mlp.1.weight": rnd(D, C),
        "ocr_mlp.1.bias": rnd(D, scale=0.02),
        "ocr_mlp.3.weight": rnd(D, D),
        "ocr_mlp.3.bias": rnd(D, scale=0.02),
        "t_prime": torch.tensor(float(np.log(10))).to(dtype),
        "b": torch.tensor(-2.71).to(dtype),
    }
    table = rnd(vocab, D, scale=1.0)
    if raw_training_names:
        sd["language_model.model.tok_embeddings.weight"] = table
        sd["language_model.model.layers.0.attention.wqkv.weight"] = rnd(8, D)
        sd["language_model.output.weight"] = rnd(vocab, D)
        sd["mlp1.0.weight"] = torch.ones(4 * C, dtype=dtype)
    else:
        sd["tok_embeddings.weight"] = table
    return sd


def official_config(vision: dict, D: int, vocab: int) -> dict:
    """config.json of a released TokenOCR checkpoint with these widths."""
    return {
        "architectures": ["InternVLChatModel"],
        "model_type": "internvl_chat",
        "vision_config": dict(vision)
        | {
            "layer_norm_eps": 1e-6,
            "qkv_bias": True,
            "qk_normalization": False,
            "norm_type": "layer_norm",
            "hidden_act": "gelu",
            "use_flash_attn": True,
            "num_channels": 3,
            "drop_path_rate": 0.0,
            "initializer_factor": 0.1,
        },
        "hidden_size": D,
        "vocab_size": vocab,
        "force_image_size": vision["image_size"],
        "select_layer": -1,
        "use_thumbnail": True,
        "min_dynamic_patch": 1,
        "max_dynamic_patch": 12,
        "downsample_ratio": 0.5,
        "template": "internlm2-chat",
        "ps_version": "v2",
        "torch_dtype": "bfloat16",
    }


def make_checkpoint(
    dir: str | Path,
    vision: dict,
    D: int,
    sentences: Sequence[str],
    *,
    vocab: int | None = None,
    pieces: int = 320,
    upsample: bool = True,
    sharded: bool = False,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    raw_training_names: bool = False,
    state_dict_edit: Callable[[dict], None] | None = None,
    config_edit: Callable[[dict], None] | None = None,
) -> Path:
    """Write a random TokenOCR checkpoint folder to ``dir`` and return it.

    ``vocab``: rows of the token table; ``None`` = the tokenizer's pieces + the 9 special tokens (which
    then follow the pieces), else the special tokens take the last 9 rows, as in InternLM2's 92,553.
    ``pieces``: the SentencePiece model's size (at least 259 + the characters of ``sentences``).
    ``state_dict_edit(sd)`` / ``config_edit(cfg)`` may mutate the tensors / config before they are
    written (tests of loud failures; the benchmark's text calibration); ``tokenizer.model`` and
    ``added_tokens.json`` are already in ``dir`` when they run.
    """
    out = Path(dir)
    out.mkdir(parents=True, exist_ok=True)
    n_pieces = train_sentencepiece(out / "tokenizer.model", sentences, pieces)
    first_special = n_pieces if vocab is None else vocab - len(SPECIAL_TOKENS)
    if first_special < n_pieces:
        raise ValueError(f"vocab={vocab} leaves no room for {n_pieces} pieces and {len(SPECIAL_TOKENS)} special tokens")
    vocab = first_special + len(SPECIAL_TOKENS)
    (out / "added_tokens.json").write_text(json.dumps({t: first_special + i for i, t in enumerate(SPECIAL_TOKENS)}))
    sd = official_state_dict(vision, D, vocab, upsample, seed, raw_training_names, dtype)
    sd = {k: v.contiguous() for k, v in sd.items()}
    cfg = official_config(vision, D, vocab)
    if state_dict_edit is not None:
        state_dict_edit(sd)
    if config_edit is not None:
        config_edit(cfg)
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    if sharded:
        keys = sorted(sd)
        half = len(keys) // 2
        shards = {"model-00001-of-00002.safetensors": keys[:half], "model-00002-of-00002.safetensors": keys[half:]}
        weight_map: dict[str, str] = {}
        for name, ks in shards.items():
            save_file({k: sd[k] for k in ks}, str(out / name), metadata={"format": "pt"})
            weight_map |= {k: name for k in ks}
        (out / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    else:
        save_file(sd, str(out / "model.safetensors"), metadata={"format": "pt"})
    return out

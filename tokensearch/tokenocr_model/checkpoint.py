"""Reading TokenOCR / TokenFD checkpoint folders: config.json, safetensors (single or sharded), fingerprint.

Nothing here executes code shipped with a checkpoint and nothing is downloaded: a checkpoint is a local
folder. Tensors are read on CPU; the caller moves them to its device/dtype.

Folder layout accepted (the Hugging Face layout of ``TongkunGuan/TokenOCR``)::

    config.json                        vision_config + top-level fields (see tokenocr.TokenOCRConfig)
    model.safetensors                  or: model-00001-of-0000N.safetensors ... + model.safetensors.index.json
    tokenizer.model                    InternLM2 SentencePiece model
    added_tokens.json                  optional: the 9 InternVL special tokens and their ids
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from safetensors import safe_open

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"


class CheckpointError(ValueError):
    """A checkpoint folder that cannot be used as it is; the message says what is wrong and where."""


def read_config(folder: str | Path) -> dict:
    """The parsed ``config.json`` of a checkpoint folder."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise CheckpointError(
            f"{path} not found: a TokenOCR checkpoint folder needs its config.json "
            "(download the whole folder, e.g. `hf download TongkunGuan/TokenOCR --local-dir DIR`)"
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from e


def weight_files(folder: str | Path) -> list[Path]:
    """The safetensors files of a checkpoint: ``model.safetensors`` or the shards its index names."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"checkpoint folder not found: {folder}")
    index = folder / INDEX_FILE
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise CheckpointError(f"{index} is not a safetensors index (needs a 'weight_map'): {e}") from e
        files = [folder / name for name in sorted(set(weight_map.values()))]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise CheckpointError(f"{index} names shard(s) that are not in {folder}: {', '.join(missing)}")
        return files
    single = folder / SINGLE_FILE
    if single.is_file():
        return [single]
    if list(folder.glob("*.bin")) or list(folder.glob("*.pt")):
        raise CheckpointError(
            f"{folder} has only pickle weights (*.bin/*.pt); convert them to safetensors "
            "(pickles can execute code and are not loaded)"
        )
    raise CheckpointError(f"no {SINGLE_FILE} or {INDEX_FILE} in {folder}")


def load_tensors(files: Iterable[Path], names: Mapping[str, str]) -> dict[str, torch.Tensor]:
    """Tensors ``names`` (checkpoint name -> our name) from safetensors files, on CPU, in their stored dtype."""
    tensors: dict[str, torch.Tensor] = {}
    for f in files:
        with safe_open(str(f), framework="pt", device="cpu") as sf:
            for key in sf.keys():
                if key in names:
                    tensors[names[key]] = sf.get_tensor(key)
    return tensors


def tensor_shapes(files: Iterable[Path]) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor in the files, read from the headers (no tensor data is loaded)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for f in files:
        with safe_open(str(f), framework="pt", device="cpu") as sf:
            for key in sf.keys():
                if key in shapes:
                    raise CheckpointError(f"tensor {key!r} appears in more than one shard ({f.name})")
                shapes[key] = tuple(sf.get_slice(key).get_shape())
    return shapes


def fingerprint(files: Iterable[Path], extra_files: Iterable[Path] = (), chunk: int = 8 << 20) -> str:
    """sha256 over the weight files (in order) and extra files such as the tokenizer, hex."""
    h = hashlib.sha256()
    for f in [*files, *extra_files]:
        h.update(f.name.encode("utf-8") + b"\0")
        with open(f, "rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
    return h.hexdigest()


def matches_any(key: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(key, p) for p in patterns)


def check_state_dict(
    found: Mapping[str, torch.Size | tuple],
    expected: Mapping[str, torch.Size | tuple],
    ignored: Iterable[str] = (),
    optional: Iterable[str] = (),
    source: str = "checkpoint",
) -> None:
    """Strict name/shape check. Raises :class:`CheckpointError` listing every missing, unexpected and
    mis-shaped tensor. ``ignored`` (glob patterns) are tolerated extras; ``optional`` may be absent."""
    ignored, optional = list(ignored), list(optional)
    missing = sorted(k for k in expected if k not in found and not matches_any(k, optional))
    unexpected = sorted(k for k in found if k not in expected and not matches_any(k, ignored))
    shapes = sorted(
        f"{k}: checkpoint {tuple(found[k])} vs model {tuple(expected[k])}"
        for k in expected
        if k in found and tuple(found[k]) != tuple(expected[k])
    )
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {', '.join(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected)}")
        if shapes:
            parts.append(f"shape mismatches ({len(shapes)}): {'; '.join(shapes)}")
        raise CheckpointError(
            f"{source} does not match the TokenOCR architecture built from its config.json — " + " | ".join(parts)
        )

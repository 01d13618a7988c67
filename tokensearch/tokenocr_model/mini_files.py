"""Where the mini model's files are: the shipped weights in this package, or a directory named by
``mini:DIR`` (``mini:FILE.safetensors``). Torch-free, so the registry and the engine can tell which files
a model spec loads (to check a cached query side) without importing the model."""

from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
WEIGHTS_FILE = "mini.safetensors"
TOKENIZER_FILE = "tokenizer.json"


def mini_paths(arg: str | Path | None) -> tuple[Path, Path, str]:
    """(weights file, tokenizer file, model name) of ``mini`` (shipped) or ``mini:DIR`` / ``mini:FILE.safetensors``."""
    if arg is None:
        return WEIGHTS_DIR / WEIGHTS_FILE, WEIGHTS_DIR / TOKENIZER_FILE, "mini"
    p = Path(arg)
    d, wfile = (p.parent, p) if p.suffix == ".safetensors" else (p, p / WEIGHTS_FILE)
    return wfile, d / TOKENIZER_FILE, f"mini:{p}"

"""bench/gpu_check.py: the script a session lent a GPU runs as one device command must work before that
device time is spent. Here it runs in tiny form on the CPU, and the full-size checkpoint it builds is
checked against the loader's architecture on the meta device (no memory, no time)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tokensearch.tokenocr_model import checkpoint as ckpt
from tokensearch.tokenocr_model import random_checkpoint as rc
from tokensearch.tokenocr_model.tokenocr import IGNORED_KEYS, OPTIONAL_KEYS, TokenOCRConfig, expected_shapes

# integration: bench/gpu_check.py in a subprocess
pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]


def test_full_size_checkpoint_is_what_the_loader_expects(monkeypatch):
    """TokenOCR-2048's names and shapes (InternViT-300M, upsampler, ocr_mlp to 2048, 92,553-row table)."""
    monkeypatch.setattr(torch, "randn", lambda *shape, generator=None: torch.empty(*shape, device="meta"))
    monkeypatch.setattr(torch, "rand", lambda *shape, generator=None: torch.empty(*shape, device="meta"))
    sd = rc.official_state_dict(rc.INTERNVIT_300M, 2048, rc.INTERNLM2_VOCAB, upsample=True, dtype=torch.bfloat16)
    cfg = TokenOCRConfig.from_json(rc.official_config(rc.INTERNVIT_300M, 2048, rc.INTERNLM2_VOCAB), upsample=True)
    assert (cfg.vision.num_hidden_layers, cfg.vision.hidden_size, cfg.tile_size, cfg.cells_per_tile) == (
        24,
        1024,
        448,
        128,
    )
    table = sd.pop("tok_embeddings.weight")
    assert tuple(table.shape) == (92553, 2048)
    ckpt.check_state_dict(
        {k: v.shape for k, v in sd.items()}, expected_shapes(cfg), ignored=IGNORED_KEYS, optional=OPTIONAL_KEYS
    )
    vision = sum(v.numel() for k, v in sd.items() if k.startswith("vision_model."))
    assert 300e6 < vision < 310e6  # InternViT-300M


def test_tiny_run_on_cpu_writes_every_figure(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "gpu_check.py"),
            "--tiny",
            "--device",
            "cpu",
            "--dtype",
            "float32",
            "--out",
            str(out),
            "--work",
            str(tmp_path / "work"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    d = json.loads((out / "gpu_check.json").read_text())
    assert d["complete"] and d["errors"] == {} and d["skipped"] == {}

    ck = d["checkpoint"]
    assert {"config.json", "tokenizer.model", "added_tokens.json", "model.safetensors"} <= set(ck["files"])
    assert ck["table_shape"] == [1000, 288] and 0 < ck["text_calibration"]["ink_fraction_blocks"] < 1
    assert d["pages"]["pages"] == 6 and d["model"]["tiles_per_page"] == 6  # A4: 2x3 tiles
    assert all(r["encode_pages_pages_per_s"] > 0 and r["gpu_pages_per_s"] > 0 for r in d["model"]["sweep"])

    ix = d["index_run"]
    assert ix["exit_code"] == 0 and ix["pages"] == 6 and ix["pages_per_s"] > 0
    assert ix["command"].startswith("tokensearch index ")
    assert "--device cpu --dtype float32 --batch-size" in ix["command"]
    stages = ix["stages"]
    assert stages["not_timed"] == []  # every function the stage clock wraps still exists
    ms = stages["ms_per_page"]
    assert min(ms["rasterise"], ms["tiling"], ms["GPU"], ms["storing thread (busy)"]) > 0
    assert stages["bound_by"] in ("reading thread", "encoding thread", "storing thread")
    assert "pages/s" in stages["limit"]

    st = d["storage"]
    assert st["pages"] == 6 and st["bytes_per_page"] > 0 and st["codec"] == "pca 288->128"
    lat = {r["query_rows"]: r for r in d["faiss"]["latency"]}
    assert set(lat) == {1, 4, 8} and all(r["faiss_cpu"]["p50_ms"] > 0 for r in lat.values())
    assert d["faiss"]["faiss_gpu_note"] == "not a CUDA device"

    pr = d["precision"]  # CPU float32 against CPU float32: the same features
    assert pr["pages"] == 2 and pr["all_cells"]["min"] > 0.9999 and pr["goal_met_min"]
    assert pr["text_mask_agreement"] == 1.0

    md = (out / "gpu_check.md").read_text()
    assert "| `tokensearch index` pages/s" in md and "Limit:" in md

"""The lent-GPU training path on the CPU, in tiny form: scripts/make_train_pack.sh packs two generated PDFs
and one font, scripts/train_gpu.sh unpacks the pack, points the data engine at it and trains three steps
(``--device cpu``); the weights and logs land in the output folder and load as a ``mini:DIR`` model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.builders import write_pdf
from tokensearch.tokenocr_model.registry import create_encoder
from tokensearch.training.datapack import asset_env

# integration: the training shell scripts in subprocesses
pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]


def _pdf(path: Path, tag: str) -> None:
    pages = [[f"Order {i} INV-2023-00{i} shipped 11/12/2020 {tag}{p}" for i in range(8)] for p in range(2)]
    write_pdf(path, pages, width=300, height=200, fontsize=10, x=20, y=30, leading=20)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENSEARCH_") and k != "OUT"}
    return {**env, "PYTHON": sys.executable, **extra}


def test_train_gpu_script_tiny_on_cpu(tmp_path: Path) -> None:
    pdfs, fonts, pack, out = tmp_path / "pdfs", tmp_path / "fonts", tmp_path / "pack", tmp_path / "out"
    pdfs.mkdir()
    _pdf(pdfs / "a.pdf", "a")
    _pdf(pdfs / "b.pdf", "b")
    fonts.mkdir()
    system = sorted(Path("/usr/share/fonts/truetype").rglob("*.ttf"))
    if system:  # else Base14 alone, as on a machine without fonts
        shutil.copy(system[0], fonts / "OneFont.ttf")

    r = subprocess.run(
        ["bash", str(REPO / "scripts/make_train_pack.sh"), "--pdf-dir", str(pdfs), "--out", str(pack), "--no-wheels"],
        env=_env(TOKENSEARCH_FONT_DIRS=str(fonts)),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    info = json.loads((pack / "pack.json").read_text())
    assert info["pdf_files"] == 2 and info["pdf_pages"] == 4
    assert info["fonts"] == (["OneFont.ttf"] if system else [])
    assert sorted(p.name for p in (pack / "pdfs").iterdir()) == ["a.pdf", "b.pdf"]

    r = subprocess.run(
        [
            "bash",
            str(REPO / "scripts/train_gpu.sh"),
            "--pack",
            str(pack),
            "--out",
            str(out),
            "--device",
            "cpu",
            "--deadline-s",
            "400",
            "--workers",
            "1",
            "--batch",
            "2",
            "--receipts",
            "0",
            "--",
            "--steps",
            "3",
            "--crop",
            "64",
            "96",
            "--val-crops",
            "4",
            "--val-every",
            "2",
            "--buffer",
            "2",
            "--reuse",
            "2",
            "--threads",
            "1",
        ],
        env=_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=400,
    )
    console = (out / "console.log").read_text()
    assert r.returncode == 0, console[-4000:] + r.stderr[-2000:]
    # the data engine read the pack's assets, not this machine's fonts
    assert f'"fonts": {len(info["fonts"])},' in console and "TOKENSEARCH_FONT_DIRS=" in console
    assert "== done: 3 steps" in console

    run = out / "run"
    log = [json.loads(line) for line in (run / "train.log").read_text().splitlines()]
    start = log[0]
    assert start["event"] == "start" and start["config"]["device"] == "cpu" and start["config"]["budget_s"] > 0
    assert start["config"]["init"] == "tokensearch/tokenocr_model/weights"
    assert start["config"]["pdf_dir"] == str(pack / "pdfs")
    assert any(rec.get("event") == "init_val" for rec in log)
    assert [rec["step"] for rec in log if "loss" in rec] == [3]
    assert not (run / "val.pt").exists()  # the validation cache does not travel back

    enc = create_encoder(f"mini:{run}")
    assert enc.info.extra["trained_steps"] >= 2
    g = enc.encode_pages([__import__("PIL.Image", fromlist=["Image"]).new("L", (40, 24), 255)])[0]
    assert g.features.shape == (3, 5, enc.info.dim)


def test_asset_env_points_the_data_engine_at_a_pack(tmp_path: Path, monkeypatch) -> None:
    from tokensearch.training import synth, textgen

    (tmp_path / "fonts" / "sub").mkdir(parents=True)
    src = sorted(Path("/usr/share/fonts/truetype").rglob("*.ttf"))
    if src:
        shutil.copy(src[0], tmp_path / "fonts" / "sub" / "A.ttf")
    (tmp_path / "words").write_text("alpha\nbeta's\ngamma\n")
    (tmp_path / "prose.txt").write_text("A line of prose that is long enough to be kept.\nshort\n")
    for k, v in asset_env(tmp_path).items():
        monkeypatch.setenv(k, v)
    for f in (synth.font_files, textgen.dictionary_words, textgen.prose_lines):
        f.cache_clear()
    try:
        assert synth.font_files() == ((str(tmp_path / "fonts" / "sub" / "A.ttf"),) if src else ())
        assert textgen.dictionary_words() == ("alpha", "gamma")
        assert textgen.prose_lines() == ("A line of prose that is long enough to be kept.",)
    finally:
        for f in (synth.font_files, textgen.dictionary_words, textgen.prose_lines):
            f.cache_clear()


def test_font_files_leave_out_faces_without_latin_letters(tmp_path: Path, monkeypatch) -> None:
    import pymupdf

    from tokensearch.training import synth

    # MuPDF's built-in Symbol face draws Greek where ASCII letters would be; a broken file draws nothing
    (tmp_path / "Greekish.otf").write_bytes(pymupdf.Font("symb").buffer)
    (tmp_path / "broken.ttf").write_bytes(b"not a font at all")
    src = sorted(Path("/usr/share/fonts/truetype").rglob("*.ttf"))
    if src:
        shutil.copy(src[0], tmp_path / "Latin.ttf")
    monkeypatch.setenv("TOKENSEARCH_FONT_DIRS", str(tmp_path))
    synth.font_files.cache_clear()
    try:
        assert synth.font_files() == ((str(tmp_path / "Latin.ttf"),) if src else ())
    finally:
        synth.font_files.cache_clear()


# runtime dependencies that the GPU machine's image lacks and the pack does not carry (PyMuPDF travels
# in site.tar.xz; KINDS.md of the device tool lists the image's packages)
NOT_ON_THE_GPU_MACHINE = (
    "sqlalchemy",
    "faiss",
    "pydantic",
    "pydantic_settings",
    "fastapi",
    "uvicorn",
    "psycopg",
    "multipart",
    "swagger_ui_bundle",
)


def test_training_imports_only_what_the_gpu_machine_has() -> None:
    """scripts/train_gpu.sh runs the training path where only torch, numpy, Pillow, tokenizers, safetensors
    (and the pack's PyMuPDF) exist: importing it must not reach storage or the API (e.g. through the
    indexer package's ``__init__``)."""
    code = f"""
import importlib.abc, sys
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {NOT_ON_THE_GPU_MACHINE!r}:
            raise ImportError(name + " is not on the GPU machine")
sys.meta_path.insert(0, Absent())
import tokensearch.training.cli_args, tokensearch.training.datapack, tokensearch.training.from_pdfs
import tokensearch.training.receipts, tokensearch.training.synth, tokensearch.training.train
"""
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]

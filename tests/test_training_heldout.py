"""Training and calibration refuse held-out evaluation data (shared/bench, the held-out Debian packages)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.builders import A4, Page, Text, pdf_bytes
from tokensearch.tokenocr_model.mini_files import TOKENIZER_FILE, WEIGHTS_DIR
from tokensearch.tokenocr_model.mini_tokenizer import MiniTokenizer
from tokensearch.training.calibrate import pdf_collection
from tokensearch.training.cli_args import main as training_main
from tokensearch.training.from_pdfs import PdfPages, find_pdfs
from tokensearch.training.heldout import HELD_OUT_FILES, HeldOutDataError, held_out_reason


def _pdf(path: Path, pad_to: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = pdf_bytes([Page([Text(72, 72, "some words of a page", fontsize=11)], **A4)])
    if pad_to is not None:  # a PDF reader ignores bytes after %%EOF: same file, the size we need
        data += b"\n" * (pad_to - len(data))
    path.write_bytes(data)
    return path


def test_a_pdf_folder_under_shared_bench_is_refused(tmp_path: Path) -> None:
    bench = tmp_path / "shared" / "bench" / "data"
    _pdf(bench / "page.pdf")
    for call in (
        lambda: find_pdfs(bench),
        lambda: find_pdfs(tmp_path / "shared"),
        lambda: PdfPages(bench, MiniTokenizer.from_file(WEIGHTS_DIR / TOKENIZER_FILE)),
    ):
        with pytest.raises(HeldOutDataError, match="shared/bench"):
            call()


def test_pdfs_where_held_out_packages_install_them_are_refused(tmp_path: Path) -> None:
    for rel in (
        "x/usr/share/doc/octave/manual.pdf",
        "x/usr/lib/R/site-library/zoo/doc/intro.pdf",
        "octave-doc/whatever.pdf",
        "debs/r-cran-sandwich_3.0-2-1_all/a.pdf",
    ):
        f = _pdf(tmp_path / rel)
        assert held_out_reason(f) is not None, rel
    with pytest.raises(HeldOutDataError, match="held-out Debian package"):
        find_pdfs(tmp_path)


def test_a_renamed_copy_of_a_held_out_pdf_is_refused_by_name_and_size(tmp_path: Path) -> None:
    size = dict(HELD_OUT_FILES)["zoo-quickref.pdf"]
    _pdf(tmp_path / "pdfs" / "1a2b3c4d_zoo-quickref.pdf", pad_to=size)  # the shipped recipe's copy name
    with pytest.raises(HeldOutDataError, match="zoo-quickref.pdf"):
        find_pdfs(tmp_path / "pdfs")


def test_ordinary_pdfs_pass_even_with_a_held_out_file_name(tmp_path: Path) -> None:
    _pdf(tmp_path / "pdfs" / "zoo.pdf")  # another zoo.pdf: not the package's file (size differs)
    _pdf(tmp_path / "pdfs" / "octave-notes" / "a.pdf")  # a name that merely starts like a package
    assert len(find_pdfs(tmp_path / "pdfs")) == 2


def test_train_refuses_a_held_out_pdf_dir_before_writing_anything(tmp_path: Path) -> None:
    bench = tmp_path / "shared" / "bench"
    _pdf(bench / "page.pdf")
    out = tmp_path / "run"
    with pytest.raises(HeldOutDataError):
        training_main(["train", "--out", str(out), "--pdf-dir", str(bench), "--steps", "1"])
    assert not out.exists()


def test_calibration_refuses_held_out_pdfs(tmp_path: Path) -> None:
    _pdf(tmp_path / "usr" / "share" / "doc" / "camlidl" / "camlidl.pdf")
    with pytest.raises(HeldOutDataError):
        pdf_collection(tmp_path, n_pages=1, seed=0)

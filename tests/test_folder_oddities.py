"""Whatever a folder holds, `index` goes on: every odd entry ends as one recorded, explained outcome.

Names that are not UTF-8, symbolic link loops, dangling links, links to folders, folders that cannot be
listed, special files, a content that disagrees with its extension, a truncated PDF — and random bytes as
names and contents (hypothesis). Good files are born-digital PDFs, indexed from their text layer (no
model run), so the cases stay fast.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from sqlalchemy import create_engine, text

from tokensearch.engine import Engine
from tokensearch.indexer.sources import is_candidate
from tokensearch.pathnames import from_db, shown, to_db
from tokensearch.samples import born_digital_pdf, rasterise_pdf
from tokensearch.settings import Settings

# integration: the indexer and the CLI over real folders
pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
CAFE = os.fsdecode(b"caf\xe9")  # 'caf\udce9': a Latin-1 name, not UTF-8


@cache
def pdf_bytes(word: str, n_pages: int = 1) -> bytes:
    return born_digital_pdf(
        [[f"Archive page {i + 1} mentions {word}", f"{word} line {i + 1}"] for i in range(n_pages)]
    )[0]


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def statuses(eng: Engine) -> dict[str, str]:
    """path -> "ok" | "failed" for every path the index knows."""
    return {k: r.status for k, r in eng.store.known_files().items()}


def failure_reason(eng: Engine, path: Path) -> str:
    f = eng.failure(str(path.absolute()))
    assert f is not None and f.reason is not None, f"{path} has no recorded failure; known: {statuses(eng)}"
    return f.reason


# -- names -----------------------------------------------------------------------------------------------


def test_file_names_are_stored_as_themselves_or_as_a_uri_of_their_bytes():
    for name in ["/docs/a.pdf", "/docs/café.pdf", f"/docs/{CAFE}.png", "file:///x", "rel/" + CAFE, "/a%20b\\c"]:
        assert from_db(to_db(name)) == name
        to_db(name).encode("utf-8")  # what SQLite, PostgreSQL and JSON accept
    assert to_db("/docs/café.pdf") == "/docs/café.pdf"  # rows of existing indexes keep their form
    assert to_db(f"/docs/{CAFE}.png") == "file:///docs/caf%E9.png"
    assert to_db("file:///x") != "file:///x"  # a name that looks like the escaped form is escaped itself
    assert shown(f"/docs/{CAFE}.png") == "/docs/caf\\xe9.png" and shown("/docs/café.pdf") == "/docs/café.pdf"


def test_a_file_name_that_is_not_utf8_is_indexed_and_stored_losslessly(tmp_path, make_engine, db_url):
    docs = tmp_path / "docs"
    good = write(docs / "good.pdf", pdf_bytes("harbour"))
    cafe = write(docs / f"{CAFE}.pdf", pdf_bytes("espresso"))
    bad = write(docs / os.fsdecode(b"bad\xff.pdf"), b"not a pdf at all")
    eng = make_engine()
    report = eng.index(docs)
    assert report.pages == 2 and [p for p, _ in report.failed] == [str(bad)]
    assert statuses(eng) == {str(good): "ok", str(cafe): "ok", str(bad): "failed"}
    assert "not a PDF" in failure_reason(eng, bad)
    hits = eng.search("espresso").hits
    assert hits and hits[0].path == str(cafe) and Path(hits[0].path).read_bytes() == pdf_bytes("espresso")
    docs_listed = {d.path for d in eng.documents()}
    assert docs_listed == {str(good), str(cafe), str(bad)}
    # the database holds a form it accepts; a second pass finds every file unchanged under its own name
    url = db_url or f"sqlite:///{tmp_path / 'home' / 'index.sqlite3'}"
    raw = create_engine(url)
    with raw.connect() as c:
        stored = set(c.execute(text("SELECT path FROM ts_paths")).scalars())
    raw.dispose()
    assert f"file://{docs}/caf%E9.pdf" in stored
    again = eng.index(docs)
    assert (again.added, again.unchanged, again.failed) == (0, 3, [])


def test_the_cli_indexes_a_folder_with_a_name_that_is_not_utf8_and_status_shows_it(tmp_path):
    docs = tmp_path / "docs"
    pdf = pdf_bytes("harbour")
    page = rasterise_pdf(pdf, 100)[0]
    docs.mkdir()
    page.save(docs / f"{CAFE}.png")
    write(docs / "good.pdf", pdf)
    home = tmp_path / "home"
    env = dict(os.environ, PYTHONPATH=str(ROOT), TOKENSEARCH_HOME=str(home))

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "tokensearch", *args], capture_output=True, text=True, env=env, timeout=600
        )

    r = run("index", str(docs), "--quiet")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "0 failed" in r.stdout
    r = run("status")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "documents:         2" in r.stdout and "failures:          0" in r.stdout
    r = run("remove", str(docs / f"{CAFE}.png"))  # the name as the shell passes it (bytes)
    assert r.returncode == 0 and "removed 1 path" in r.stdout, r.stderr[-3000:]


# -- links, folders, special files ---------------------------------------------------------------------------


def test_symbolic_link_loops_are_recorded_failures(tmp_path, make_engine):
    docs = tmp_path / "docs"
    good = write(docs / "good.pdf", pdf_bytes("harbour"))
    (docs / "self.pdf").symlink_to("self.pdf")
    (docs / "a.pdf").symlink_to("b.pdf")
    (docs / "b.pdf").symlink_to("a.pdf")
    eng = make_engine()
    report = eng.index(docs)
    assert report.added == 1 and statuses(eng)[str(good)] == "ok"
    for name in ("self.pdf", "a.pdf", "b.pdf"):
        assert "symbolic link loop" in failure_reason(eng, docs / name)


def test_dangling_links_are_recorded_with_their_target_and_forgotten_once_mended(tmp_path, make_engine):
    docs = tmp_path / "docs"
    write(docs / "good.pdf", pdf_bytes("harbour"))
    link = docs / "gone.pdf"
    link.symlink_to(tmp_path / "elsewhere" / "gone.pdf")
    eng = make_engine()
    eng.index(docs)
    reason = failure_reason(eng, link)
    assert "dangling symbolic link" in reason and str(tmp_path / "elsewhere" / "gone.pdf") in reason
    assert eng.index(docs).unchanged == 2  # the same reason again: nothing rewritten
    target = write(tmp_path / "elsewhere" / "gone.pdf", pdf_bytes("mended"))
    report = eng.index(docs)
    assert report.added == 1 and eng.failure(str(link)) is None
    assert statuses(eng)[str(target)] == "ok"  # a link is indexed under its target


def test_links_to_folders_are_reported_as_not_followed(tmp_path, make_engine):
    docs = tmp_path / "docs"
    write(docs / "sub" / "inner.pdf", pdf_bytes("harbour"))
    (docs / "sub" / "up").symlink_to("..")  # a cycle, if it were followed
    eng = make_engine()
    report = eng.index(docs)
    assert report.added == 1
    assert "not followed" in failure_reason(eng, docs / "sub" / "up")


def test_a_folder_that_cannot_be_listed_is_recorded_and_forgotten_once_readable(tmp_path, make_engine, monkeypatch):
    """Simulated (os.scandir refuses the folder), so it also holds when the tests run as root."""
    docs = tmp_path / "docs"
    write(docs / "good.pdf", pdf_bytes("harbour"))
    locked = docs / "locked"
    write(locked / "inner.pdf", pdf_bytes("secret"))
    real_scandir = os.scandir

    def scandir(path="."):  # noqa: ANN001
        if Path(os.fsdecode(path)) == locked:
            raise PermissionError(13, "Permission denied", os.fsdecode(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    eng = make_engine()
    report = eng.index(docs)
    assert report.added == 1 and "cannot list the folder: Permission denied" in failure_reason(eng, locked)
    monkeypatch.setattr(os, "scandir", real_scandir)
    report = eng.index(docs)
    assert report.added == 1 and eng.failure(str(locked)) is None
    assert statuses(eng)[str(locked / "inner.pdf")] == "ok"


@pytest.mark.skipif(
    os.geteuid() == 0,
    reason="running as root: chmod 000 does not stop root from listing a "
    "folder (the simulated test above covers the mechanism)",
)
def test_an_unreadable_folder_is_recorded(tmp_path, make_engine):
    docs = tmp_path / "docs"
    write(docs / "good.pdf", pdf_bytes("harbour"))
    locked = docs / "locked"
    write(locked / "inner.pdf", pdf_bytes("secret"))
    locked.chmod(0)
    try:
        eng = make_engine()
        assert eng.index(docs).added == 1
        assert "cannot list the folder" in failure_reason(eng, locked)
    finally:
        locked.chmod(0o755)


def test_special_files_named_like_documents_are_recorded_not_opened(tmp_path, make_engine):
    docs = tmp_path / "docs"
    write(docs / "good.pdf", pdf_bytes("harbour"))
    os.mkfifo(docs / "pipe.pdf")  # opening it would block the run forever
    eng = make_engine()
    assert eng.index(docs).added == 1
    assert "not a regular file (a named pipe)" in failure_reason(eng, docs / "pipe.pdf")


# -- contents -------------------------------------------------------------------------------------------


def test_a_png_named_pdf_is_indexed_by_its_content_with_a_warning(tmp_path, make_engine):
    docs = tmp_path / "docs"
    docs.mkdir()
    rasterise_pdf(pdf_bytes("harbour"), 100)[0].save(docs / "scan.pdf", format="PNG")
    eng = make_engine()
    report = eng.index(docs)
    assert report.added == 1 and not report.failed
    message = "the extension '.pdf' says PDF, the content is PNG: indexed as PNG"
    assert report.warnings == [(str(docs / "scan.pdf"), message)]
    (doc,) = eng.documents()
    assert doc.kind == "image" and doc.status == "ok" and doc.warnings == [f"{docs / 'scan.pdf'}: {message}"]
    assert eng.stats().warnings == [(str(docs / "scan.pdf"), message)]
    # the same content under its right name has no warning; the warning goes with its path
    (docs / "scan.png").write_bytes((docs / "scan.pdf").read_bytes())
    assert eng.index(docs).duplicates == 1
    (docs / "scan.pdf").unlink()
    eng.index(docs)
    assert eng.documents()[0].warnings == [] and eng.stats().warnings == []


def test_a_truncated_pdf_keeps_its_readable_pages_and_is_marked_partial(tmp_path, make_engine, capfd):
    docs = tmp_path / "docs"
    whole = pdf_bytes("lighthouse", n_pages=8)
    write(docs / "cut.pdf", whole[: len(whole) // 2])
    eng = make_engine()
    report = eng.index(docs)
    assert report.added == 1 and not report.failed
    (doc,) = eng.documents()
    assert doc.status == "partial" and 3 <= doc.pages < 8
    (warning,) = doc.warnings
    assert "damaged PDF file" in warning and "not indexed" in warning and "pages that could be read" in warning
    assert report.warnings == [(str(docs / "cut.pdf"), warning)]
    assert eng.stats().partial_documents == 1
    assert {h.page for h in eng.search("lighthouse", k=20).hits} >= {1, 2, 3}
    assert "MuPDF" not in capfd.readouterr().err  # its messages are in the record, not on stderr


def test_a_truncated_multipage_tiff_keeps_its_first_frames_and_is_marked_partial(tmp_path, make_engine):
    rng = np.random.default_rng(0)
    frames = [Image.fromarray(rng.integers(0, 255, (200, 150), dtype=np.uint8)) for _ in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, format="TIFF", save_all=True, append_images=frames[1:])
    docs = tmp_path / "docs"
    write(docs / "fax.tiff", buf.getvalue()[: int(len(buf.getvalue()) * 0.8)])  # the third frame is cut
    eng = make_engine()
    report = eng.index(docs)
    assert report.added == 1 and not report.failed
    (doc,) = eng.documents()
    assert doc.status == "partial" and doc.pages == 2
    assert "page(s) 3 not indexed (unreadable: image file is truncated" in doc.warnings[0]


# -- anything at all ------------------------------------------------------------------------------------

_NAME = st.binary(min_size=1, max_size=12).filter(lambda b: b"/" not in b and b"\0" not in b)
_EXT = st.sampled_from([b".pdf", b".png", b".jpg", b".tiff", b".bmp", b".webp", b"", b".txt"])


@settings(max_examples=20, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    junk=st.lists(st.tuples(_NAME, _EXT, st.binary(max_size=200)), max_size=6),
    good=st.lists(_NAME.filter(lambda b: not b.startswith(b".")), min_size=1, max_size=3, unique=True),
)
def test_random_names_and_contents_never_stop_index_and_good_files_are_indexed(mini_encoder, junk, good):
    with tempfile.TemporaryDirectory() as tmp:
        docs = Path(tmp) / "docs"
        docs.mkdir()
        good_paths = []
        for i, name in enumerate(good):
            good_paths.append(write(docs / os.fsdecode(name + b".pdf"), pdf_bytes(f"needle{i}")))
        for name, ext, content in junk:
            path = docs / os.fsdecode(name + ext)
            if path not in good_paths and name not in (b".", b".."):
                path.write_bytes(content)
        with Engine(Settings(home=Path(tmp) / "home"), encoder=mini_encoder) as eng:
            eng.index(docs)
            known = statuses(eng)
            assert all(known.get(str(p)) == "ok" for p in good_paths), known
            for path in docs.iterdir():  # every document-looking file has an outcome
                if is_candidate(path):
                    assert str(path) in known, (path, known)
            again = eng.index(docs)
            assert again.added == again.updated == 0 and not again.failed

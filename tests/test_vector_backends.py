"""The Milvus vector backend (milvus-lite, in this process) against FAISS: the same cells, positions and
hits, filtered search, index types, and a FAISS-only install that never imports pymilvus.
(Crash safety and the store's behaviour on both backends: test_storage*.py, test_crash_recovery.py.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.sample_copies import copy_sample
from tests.storage_fixtures import ROOT, need_milvus, one_faiss_thread, random_doc, write  # noqa: F401
from tokensearch.engine import Engine
from tokensearch.settings import Settings
from tokensearch.storage import Store

# integration: milvus-lite against FAISS
pytestmark = [pytest.mark.milvus, pytest.mark.integration]


@pytest.fixture(autouse=True)
def _milvus_installed():
    need_milvus()


def _hits(eng: Engine, query: str) -> list[tuple[str, int, float]]:
    return [(h.path, h.page, round(h.score, 3)) for h in eng.search(query, k=10).hits]


def test_engine_hits_are_the_same_on_faiss_and_milvus_through_index_remove_reindex(tmp_path, mini_encoder):
    """Generated documents (a born-digital PDF, its scanned copy, a PNG scan of its page 1) indexed once per
    backend: every query finds the same pages with the same scores and boxes; after removing a file and
    after indexing it again too. (A search on milvus-lite costs ~2 s of Python per 40k cells found: few
    queries.)"""
    sample = copy_sample(tmp_path / "docs")
    for extra in (sample.tiff, sample.photo, *sample.pngs[1:]):
        extra.unlink()
    engines = {
        b: Engine(Settings(home=tmp_path / b, vector_backend=b), encoder=mini_encoder) for b in ("faiss", "milvus")
    }
    queries = ["committee", "INV-2023-0042", "zeppelin"]
    try:
        for eng in engines.values():
            eng.index(sample.root)
        first = {b: [_hits(e, q) for q in queries] for b, e in engines.items()}
        assert first["milvus"] == first["faiss"]
        assert len(first["faiss"][0]) >= 2 and len(first["faiss"][1]) >= 2  # the scan's page and the PDF's
        boxes = {b: [h.boxes for h in e.search("INV-2023-0042").hits] for b, e in engines.items()}
        assert boxes["milvus"] == boxes["faiss"]

        moved = tmp_path / "aside.pdf"
        shutil.move(sample.image_pdf, moved)
        for eng in engines.values():
            eng.index(sample.root)  # the scanned PDF is gone: its pages and vectors with it
        gone = {b: _hits(e, "committee") for b, e in engines.items()}
        assert gone["milvus"] == gone["faiss"] and gone["faiss"] != first["faiss"][0]
        assert not any(path == str(sample.image_pdf) for path, _, _ in gone["milvus"])

        shutil.move(moved, sample.image_pdf)
        for eng in engines.values():
            eng.index(sample.root)
        again = {b: _hits(e, "committee") for b, e in engines.items()}
        assert again["milvus"] == again["faiss"]
        assert {(p, n) for p, n, _ in again["milvus"]} == {(p, n) for p, n, _ in first["milvus"][0]}
        st = engines["milvus"].store.stats()
        assert st.vector_index_type == "milvus:flat" and st.vectors == engines["faiss"].store.stats().vectors
        assert engines["milvus"].store.verify() == []
    finally:
        for eng in engines.values():
            eng.close()


def test_cells_positions_and_filtered_search_match_faiss(tmp_path):
    """Per query row the same top cells (page, grid row and column) as FAISS's exact flat index, with and
    without a filter to some pages; a filter to no indexed page finds nothing."""
    stores = {b: Store.open(tmp_path / b, vector_backend=b) for b in ("faiss", "milvus")}
    try:
        for st in stores.values():
            for seed in range(1, 5):
                write(st, seed, n_pages=2)
        probe = np.concatenate([p.feats[:4] for p in random_doc(2, 2)])  # cells of doc 2's pages
        q = stores["faiss"].project_queries(probe)
        allowed = np.array(sorted(p.page_id for p in stores["faiss"].document_pages(3)))
        for pages in (None, allowed):
            got = {b: st.search_cells_at(q, 20, pages) for b, st in stores.items()}
            for (fp, fs, fc), (mp, ms, mc) in zip(got["faiss"], got["milvus"]):
                assert len(mp) == len(fp) == 20
                assert np.abs(ms - fs).max() < 0.01  # int8 codes in FAISS (a unit vector x 127), float32 in Milvus
                assert (mp[0], *mc[0]) == (fp[0], *fc[0])
                if pages is None:
                    assert fs[0] > 0.99 and ms[0] > 0.999  # the cell itself
                else:
                    assert set(mp) <= set(allowed.tolist())
        assert stores["milvus"].search_cells_at(q[:2], 5, np.array([10**6]))[0][0].size == 0
    finally:
        for st in stores.values():
            st.close()


@pytest.mark.parametrize("kind", ["IVF_SQ8", "HNSW"])
def test_compressed_milvus_index_types_find_the_cells(tmp_path, kind):
    """The index types a server would use, on milvus-lite: a stored cell finds its own page first."""
    st = Store.open(tmp_path / "home", vector_backend="milvus", milvus_index=kind)
    try:
        pages = {seed: write(st, seed, n_pages=1) for seed in range(1, 4)}
        assert st.stats().vector_index_type == f"milvus:{kind.lower()}"
        for seed, doc in pages.items():
            page = st.document_pages(doc)[0].page_id
            hits = st.search_cells_at(st.project_queries(random_doc(seed, 1)[0].feats[:3]), 5)
            assert all(ids[0] == page and scores[0] > 0.98 for ids, scores, _ in hits)
    finally:
        st.close()


@pytest.mark.parametrize("dropped", ["both", "markers"])
def test_a_wiped_collection_is_rebuilt_from_the_feature_store(tmp_path, dropped):
    """Milvus is derived data: dropping its collections (or only the page markers) loses nothing: the
    next open re-adds every page."""
    st = Store.open(tmp_path / "home", vector_backend="milvus")
    write(st, 1)
    write(st, 2)
    client, (cells, marks) = st.vectors._connect(), st.vectors._collections()
    for name in (cells, marks) if dropped == "both" else (marks,):
        client.drop_collection(name)
    st.close()
    st = Store.open(tmp_path / "home", vector_backend="milvus")
    try:
        page = st.document_pages(st.doc_for_content("sha-2"))[1].page_id
        hits = st.search_cells(st.project_queries(random_doc(2, 2)[1].feats[:3]), 1)
        assert all(ids[0] == page for ids, _ in hits)
        assert st.verify() == [] and st.stats().vectors == 800
    finally:
        st.close()


def test_the_faiss_backend_never_imports_pymilvus_and_milvus_without_it_says_how_to_install(tmp_path):
    code = """
import sys
from pathlib import Path
from tests.storage_fixtures import write
from tokensearch.engine import Engine
from tokensearch.storage import Store
st = Store.open(Path(sys.argv[1]) / "a")
write(st, 1)
st.search_cells(st.project_queries(st.page_features([1])[1].feats[:2]), 3)
st.close()
assert "pymilvus" not in sys.modules and "milvus_lite" not in sys.modules, "imported without need"
sys.modules["pymilvus"] = None  # as if the milvus extra were not installed
from tokensearch.storage.milvus import VectorBackendError
st = Store.open(Path(sys.argv[1]) / "b", vector_backend="milvus")
try:
    write(st, 1)
except VectorBackendError as e:
    print("ERROR", e)
"""
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)},
    )
    assert out.returncode == 0, out.stderr
    assert "ERROR" in out.stdout and "pip install 'tokensearch[milvus]'" in out.stdout


def test_a_long_running_searcher_repairs_what_a_dead_writer_left_not_what_a_live_one_is_writing(tmp_path, monkeypatch):
    """A writer that committed in SQL and died before Milvus (its ``committed`` never runs): a searcher
    that has been running leaves the gap alone at its next check (the writer may still be writing), and
    adds the pages at the check after, though another writer went on committing in between."""
    import tokensearch.storage.milvus as milvus_mod

    reader = Store.open(tmp_path / "home", vector_backend="milvus")
    writer = Store.open(tmp_path / "home", vector_backend="milvus")
    live = Store.open(tmp_path / "home", vector_backend="milvus")
    try:
        write(writer, 1)
        probe = reader.project_queries(random_doc(2, 1)[0].feats[:2])
        assert reader.search_cells(probe, 1)[0][1][0] < 0.9  # doc 2 not written yet
        monkeypatch.setattr(writer.vectors, "committed", lambda *a, **k: None)  # dies after its SQL commit
        page = reader.document_pages(write(writer, 2))[0].page_id
        monkeypatch.setattr(milvus_mod, "RECHECK_S", 0.0)
        assert page not in reader.search_cells(probe, 1)[0][0]  # committed since the last check: left alone
        write(live, 3)
        assert all(ids[0] == page for ids, _ in reader.search_cells(probe, 1))  # committed before it: added
        assert reader.verify() == []
    finally:
        for st in (reader, writer, live):
            st.close()


def test_a_milvus_lite_file_open_in_another_process_is_refused_with_the_fix(tmp_path):
    """milvus-lite locks its folder: a second process gets a VectorBackendError naming a Milvus server as
    the way out (e.g. `tokensearch serve`, whose search workers are processes), not a bare gRPC error."""
    st = Store.open(tmp_path / "home", vector_backend="milvus")
    try:
        write(st, 1)
        code = f"""
from tests.storage_fixtures import random_doc
from tokensearch.storage import Store
from tokensearch.storage.milvus import VectorBackendError
st = Store.open({str(tmp_path / "home")!r}, vector_backend="milvus")
try:
    st.search_cells(st.project_queries(random_doc(1, 1)[0].feats[:1]), 1)
except VectorBackendError as e:
    print("ERROR", e)
"""
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert "ERROR cannot open Milvus" in out.stdout and "Milvus server" in out.stdout, out.stdout + out.stderr
    finally:
        st.close()


def test_the_backend_is_chosen_by_flag_or_environment(monkeypatch, tmp_path):
    from tokensearch.cli import build_parser, settings_from_args

    args = build_parser("status").parse_args(
        ["status", "--vector-backend", "milvus", "--milvus-uri", str(tmp_path / "m.db")]
    )
    s = settings_from_args(args)
    assert (s.vector_backend, s.milvus_uri) == ("milvus", str(tmp_path / "m.db"))
    monkeypatch.setenv("TOKENSEARCH_VECTOR_BACKEND", "milvus")
    monkeypatch.setenv("TOKENSEARCH_MILVUS_INDEX", "HNSW")
    env = Settings(home=tmp_path / "home")
    assert env.store_options()["vector_backend"] == "milvus" and env.store_options()["milvus_index"] == "HNSW"
    eng = Engine(env)
    try:
        assert eng.store.stats().vector_index_type == "milvus:none"  # nothing written: no collection yet
        write(eng.store, 1)
        assert eng.store.stats().vector_index_type == "milvus:hnsw"
    finally:
        eng.close()

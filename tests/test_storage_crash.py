"""Crash safety: a writer killed with SIGKILL at any point leaves a consistent index (SQLite and
PostgreSQL, FAISS flat and IVF indexes, token postings, Milvus), and the next run finishes the job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from tests.storage_fixtures import ROOT, db_url, need_milvus, one_faiss_thread, open_store, random_doc  # noqa: F401

# integration: writers killed with SIGKILL
pytestmark = pytest.mark.integration

ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    import numpy as np
    from tests.storage_fixtures import random_doc
    from tokensearch.storage import postings as postings_mod, store as store_mod, vectors as vectors_mod
    from tokensearch.storage import Store
    from tokensearch.storage.records import ModelInfo

    point, home, url, flat_max = sys.argv[1], Path(sys.argv[2]), sys.argv[3] or None, int(sys.argv[4])
    backend = sys.argv[5]
    die = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
    st = Store.open(home, url, persist_interval=0, flat_max_vectors=flat_max, vector_backend=backend)
    if len(sys.argv) > 6:  # postings: a vocabulary whose tokens are every cell of the four documents
        vocab = np.concatenate([p.feats for s in (1, 2, 3, 4) for p in random_doc(s, 3)])
        st.ensure_model(ModelInfo("test", "test", "c" * 64, 64), vocabulary=lambda: vocab)
    if point in ("milvus_add", "milvus_remove"):  # die as the page markers are written / deleted
        client = st.vectors._connect()
        orig_upsert, orig_delete = client.upsert, client.delete
        def upsert(name, rows, **kw):
            if point == "milvus_add" and name.endswith("_pages") and rows[0]["done"] and rows[0]["page"] > 6:
                die()  # doc 4's vectors are in, its markers still say "pending"
            return orig_upsert(name, rows, **kw)
        def delete(name, **kw):
            if point == "milvus_remove" and name.endswith("_pages"):
                die()  # doc 2's vectors are gone, its markers not
            return orig_delete(name, **kw)
        client.upsert, client.delete = upsert, delete
    for seed in (1, 2, 3):
        st.write_document(f"sha-{seed}", f"/{seed}.pdf", 1, 1, "pdf", iter(random_doc(seed, 2)))
    st.unlink_path("/2.pdf")
    if point == "after_fsync":
        st.features.sync = (lambda orig: lambda: (orig(), die()))(st.features.sync)
    elif point == "after_commit":
        st.vectors.committed = die
    elif point == "during_persist":
        vectors_mod._atomic_write = postings_mod._atomic_write = die
    def pages():
        doc = random_doc(4, 3)
        yield doc[0]
        yield doc[1]
        if point == "iterator":
            die()
        yield doc[2]
    st.write_document("sha-4", "/4.pdf", 1, 1, "pdf", pages())
    st.persist()  # (the periodic snapshot may have come first)
    print("not killed")
    """
)


MILVUS = pytest.mark.milvus


@pytest.mark.parametrize(
    "point,index",
    [
        ("iterator", "ivf"),
        ("after_fsync", "ivf"),
        ("after_commit", "ivf"),
        ("during_persist", "ivf"),
        ("after_commit", "flat"),
        ("iterator", "postings"),
        ("after_commit", "postings"),
        ("during_persist", "postings"),
    ]
    + [pytest.param(point, "milvus", marks=MILVUS) for point in ("after_commit", "milvus_add", "milvus_remove")],
)
def test_kill_9_leaves_a_consistent_index(open_store, db_url, tmp_path, point, index):
    """The writer dies (SIGKILL) at a point of its 4th document (after 3 written and 1 unlinked), or for
    Milvus between a page's vectors and its marker (milvus_add: doc 4; milvus_remove: doc 2's unlink)."""
    home = tmp_path / "home"
    # ivf, postings: 800 vectors after doc 2 -> IVF-SQ4 or postings, snapshots
    flat_max = 500 if index in ("ivf", "postings") else 10**6
    backend = "milvus" if index == "milvus" else "faiss"
    if backend == "milvus":
        need_milvus()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, point, str(home), db_url or "", str(flat_max), backend]
        + (["postings"] if index == "postings" else []),
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **ONE_THREAD, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr

    store = open_store(flat_max_vectors=flat_max, vector_backend=backend)
    committed = {1, 3} | ({4} if point in ("after_commit", "during_persist", "milvus_add") else set())
    st = store.stats()
    types = {"flat": "flat-ip-int8", "ivf": "ivf20,sq4", "postings": "postings3-m0.1-peaks-p2", "milvus": "milvus:flat"}
    assert st.vector_index_type == types[index]
    assert store.verify(read_all=True) == []
    assert st.documents == len(committed)
    assert st.pages == 2 * len(committed) + (1 if 4 in committed else 0)
    assert st.vectors == st.pages * 200 == st.feature_cells
    for seed in (1, 2, 3, 4):
        doc = store.doc_for_content(f"sha-{seed}")
        assert (doc is not None) == (seed in committed)
        page_ids = {p.page_id for p in store.document_pages(doc)} if doc else set()
        for page in random_doc(seed, 2):
            hits = store.search_cells(store.project_queries(page.feats[:3]), 1)
            found = {int(ids[0]) for ids, scores in hits if len(scores) and scores[0] > 0.99}
            assert bool(found) == (seed in committed) and found <= page_ids
    # the next run finishes the job, and drops what the killed writer left in its segment
    if 4 not in committed:
        store.write_document("sha-4", "/4.pdf", 1, 1, "pdf", iter(random_doc(4, 3)))
    st = store.stats()
    assert st.vectors == (2 + 2 + 3) * 200 and st.documents == 3 and store.verify() == []
    live = sum(p.stat().st_size for p in (home / "features").iterdir())
    assert live == st.feature_bytes + 2 * (st.feature_bytes // 7)  # + the unlinked doc 2 (2 of 9 pages)

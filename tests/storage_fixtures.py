"""Fixtures and data builders for the storage tests (kept out of conftest.py, which other parts own).

Every storage test runs on SQLite and on PostgreSQL. PostgreSQL tests get a fresh schema each (the URL
sets ``search_path``), dropped afterwards, so tests never see each other's rows. The server is
``TOKENSEARCH_TEST_PG_URL`` (default: the local test database). When no server answers there, those
tests are skipped, saying so, unless the environment variable ``CI`` is set (scripts/test.sh sets it):
in CI they must run, so they FAIL. A server that answers but refuses (login, database) always fails them;
``TOKENSEARCH_TEST_PG_URL=off`` skips them explicitly (outside CI).
"""

from __future__ import annotations

import functools
import os
import socket
import uuid
from pathlib import Path

import faiss
import numpy as np
import pytest
from sqlalchemy import create_engine, make_url, text

from tests.ci import in_ci
from tokensearch.storage import PageRecord, Store
from tokensearch.vectornorm import l2_normalize

ROOT = Path(__file__).resolve().parents[1]  # the checkout: PYTHONPATH of child processes that import tests.*

PG_DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def pg_base_url() -> str | None:
    url = os.environ.get("TOKENSEARCH_TEST_PG_URL", PG_DEFAULT_URL)
    return None if url.strip().lower() == "off" else url


@functools.cache
def pg_silence(url: str) -> str | None:
    """None when something accepts connections where ``url`` points (TCP host and port, or the Unix socket
    of a URL without a host), else why not. Probed once per URL and run."""
    u = make_url(url)
    host, port = u.host or u.query.get("host"), u.port or 5432
    try:
        if isinstance(host, str) and host and not host.startswith("/"):
            socket.create_connection((host, port), timeout=3).close()
        else:  # a socket folder (?host=/path), or libpq's default one (Debian's)
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(3)
                s.connect(f"{host or '/var/run/postgresql'}/.s.PGSQL.{port}")
    except OSError as e:
        return f"{type(e).__name__}: {e}"
    return None


def postgres_url() -> str:
    """The PostgreSQL server's URL for a test, or the test skipped (no server answers, outside CI) or failed
    (no server answers in CI; tests disabled in CI)."""
    base = pg_base_url()
    if base is None:
        if in_ci():
            pytest.fail("TOKENSEARCH_TEST_PG_URL=off, but CI requires the PostgreSQL tests", pytrace=False)
        pytest.skip("PostgreSQL storage tests disabled by TOKENSEARCH_TEST_PG_URL=off")
    why = pg_silence(base)
    if why is not None:
        shown = make_url(base).render_as_string(hide_password=True)
        if in_ci():
            pytest.fail(
                f"no PostgreSQL server answers at {shown} ({why}); CI requires it (CI is set): start it, or "
                "point TOKENSEARCH_TEST_PG_URL at a reachable server",
                pytrace=False,
            )
        pytest.skip(f"no PostgreSQL server answers at {shown}; CI requires it")
    return base


def with_search_path(url: str, schema: str) -> str:
    """The URL with libpq ``options=-csearch_path=<schema>`` (what a user would also write)."""
    u = make_url(url)
    return u.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)


# the PostgreSQL half needs a server: the integration tier (`-m "not slow and not integration"` runs SQLite only)
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def db_url(request):
    """None (the default SQLite file in the home) or a PostgreSQL URL bound to a fresh schema."""
    if request.param == "sqlite":
        yield None
        return
    base = postgres_url()
    engine = create_engine(base)
    schema = f"ts_test_{uuid.uuid4().hex[:12]}"
    try:
        with engine.begin() as c:
            c.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as e:  # noqa: BLE001
        engine.dispose()
        shown = make_url(base).render_as_string(hide_password=True)
        pytest.fail(
            f"the PostgreSQL server at {shown} answers but refuses the tests ({type(e).__name__}: {e}). Point "
            f"TOKENSEARCH_TEST_PG_URL at a server and database they may use (CREATE SCHEMA).",
            pytrace=False,
        )
    try:
        yield with_search_path(base, schema)
    finally:
        with engine.begin() as c:
            c.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


# the vector backends a test runs on when it names them: @pytest.mark.parametrize("vector_backend", BACKENDS)
# (milvus runs milvus-lite in the test's process, its files in the home)
BACKENDS = ["faiss", pytest.param("milvus", marks=[pytest.mark.milvus, pytest.mark.integration])]


def need_milvus() -> None:
    """Milvus tests FAIL without pymilvus + milvus-lite (CI installs the extra), unless
    ``TOKENSEARCH_TEST_MILVUS=off`` skips them explicitly (like PostgreSQL's)."""
    if os.environ.get("TOKENSEARCH_TEST_MILVUS", "").strip().lower() == "off":
        pytest.skip("Milvus backend tests disabled by TOKENSEARCH_TEST_MILVUS=off")
    try:
        import milvus_lite  # noqa: F401
        import pymilvus  # noqa: F401
    except ImportError as e:
        pytest.fail(
            f"the Milvus backend tests need pymilvus and milvus-lite ({e}): pip install '.[milvus]', "
            "or set TOKENSEARCH_TEST_MILVUS=off to skip them",
            pytrace=False,
        )


@pytest.fixture
def vector_backend() -> str:
    """The store's vector backend: FAISS, unless a test parametrises this name over :data:`BACKENDS`."""
    return "faiss"


@pytest.fixture
def open_store(tmp_path, db_url, vector_backend):
    """``open_store(**options)`` -> a Store in ``tmp_path/home`` on the parametrised database (and vector
    backend); every store it opened is closed at the end."""
    opened: list[Store] = []
    if vector_backend == "milvus":
        need_milvus()

    def _open(home: Path | None = None, **options) -> Store:
        options.setdefault("vector_backend", vector_backend)
        store = Store.open(home or tmp_path / "home", db_url, **options)
        opened.append(store)
        return store

    yield _open
    for s in opened:
        s.close()


def random_page(
    rng: np.random.Generator,
    page_no: int,
    n: int = 200,
    dim: int = 64,
    grid: tuple[int, int] = (40, 30),
    source: str = "vision",
    basis: np.ndarray | None = None,
) -> PageRecord:
    """A page of ``n`` random text cells with random unit features (optionally in the span of ``basis``)."""
    gh, gw = grid
    flat = rng.choice(gh * gw, n, replace=False)
    if basis is None:
        feats = rng.standard_normal((n, dim))
    else:  # low intrinsic dimension + a little noise, like real features
        feats = rng.standard_normal((n, basis.shape[0])) @ basis + 0.05 * rng.standard_normal((n, basis.shape[1]))
    return PageRecord(
        page_no=page_no,
        width=gw * 8,
        height=gh * 8,
        source=source,
        grid_h=gh,
        grid_w=gw,
        ys=(flat // gw).astype(np.int64),
        xs=(flat % gw).astype(np.int64),
        feats=l2_normalize(feats).astype(np.float32),
        text=f"page {page_no}",
    )


def random_doc(seed: int, n_pages: int = 2, **kw) -> list[PageRecord]:
    rng = np.random.default_rng(seed)
    return [random_page(rng, i + 1, **kw) for i in range(n_pages)]


@pytest.fixture(autouse=True)
def one_faiss_thread():
    """Tiny indexes: OpenMP threads only add contention on a shared 2-core machine (autouse in the
    storage test modules that import it)."""
    n = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(n)


def write(store: Store, seed: int, n_pages: int = 2, path: str | None = None, **kw) -> int:
    """Write document ``sha-<seed>`` (random pages from ``seed``) at ``path`` (default /docs/<seed>.pdf)."""
    pages = random_doc(seed, n_pages, **kw)
    path = path or f"/docs/{seed}.pdf"
    return store.write_document(f"sha-{seed}", path, 100 + seed, 10**9 + seed, "pdf", iter(pages))


def top_pages(store: Store, vecs: np.ndarray, k: int = 5) -> list[set[int]]:
    """Per query vector: the set of page ids among its top-k cells."""
    return [set(ids.tolist()) for ids, _ in store.search_cells(store.project_queries(vecs), k)]


def token_blob_page(
    rng: np.random.Generator, page_no: int, tokens, noise=0.02, grid=(40, 60), block=(3, 6)
) -> PageRecord:
    """Vision-like page: each token covers a block of cells holding its vector plus a little noise."""
    gh, gw = grid
    ys, xs, feats = [], [], []
    for i, vec in enumerate(tokens):
        y0, x0 = (i // 8) * (block[0] + 1), (i % 8) * (block[1] + 1)
        yy, xx = np.mgrid[y0 : y0 + block[0], x0 : x0 + block[1]]
        ys.append(yy.ravel())
        xs.append(xx.ravel())
        feats.append(vec + noise * rng.standard_normal((yy.size, len(vec))))
    return PageRecord(
        page_no,
        gw * 8,
        gh * 8,
        "vision",
        gh,
        gw,
        np.concatenate(ys),
        np.concatenate(xs),
        l2_normalize(np.concatenate(feats)).astype(np.float32),
    )

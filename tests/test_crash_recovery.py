"""A crash in the middle of indexing (SIGKILL) loses nothing committed and duplicates nothing on re-run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.storage_fixtures import BACKENDS, need_milvus
from tokensearch.samples import born_digital_pdf, rasterise_pdf

# integration: indexing processes killed with SIGKILL
pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]

INDEX_SCRIPT = """
import sys
from pathlib import Path
from tokensearch.engine import Engine
from tokensearch.settings import Settings
url = sys.argv[4] if len(sys.argv) > 4 else None
with Engine(Settings(home=Path(sys.argv[2]), database_url=url, batch_size=1, vector_backend=sys.argv[3])) as eng:
    eng.index(Path(sys.argv[1]))
"""


def _docs(home: Path, url: str | None) -> int:
    eng = create_engine(url or f"sqlite:///{home / 'index.sqlite3'}")
    try:
        with eng.connect() as c:
            return c.execute(text("SELECT count(*) FROM ts_documents WHERE status = 'ok'")).scalar_one()
    except Exception:  # noqa: BLE001  (tables not created yet)
        return 0
    finally:
        eng.dispose()


@pytest.mark.parametrize("vector_backend", BACKENDS)
def test_kill_during_indexing_then_rerun_finishes_without_loss_or_duplicates(
    tmp_path, db_url, make_engine, vector_backend
):
    if vector_backend == "milvus":
        need_milvus()
    docs = tmp_path / "docs"
    docs.mkdir()
    n = 8
    for i in range(n):
        pdf, _ = born_digital_pdf([[f"Scan number {i} of the crash archive", f"serial CRASH-{1000 + i}"]])
        rasterise_pdf(pdf, 150)[0].save(docs / f"scan-{i}.png")
    home = tmp_path / "home"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    args = [sys.executable, "-c", INDEX_SCRIPT, str(docs), str(home), vector_backend] + ([db_url] if db_url else [])
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and _docs(home, db_url) < 2 and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, f"indexing ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = _docs(home, db_url)
    assert 2 <= done_before < n

    eng = make_engine(home=home, vector_backend=vector_backend)
    rep = eng.index(docs)
    assert rep.added == n - done_before and rep.unchanged == done_before and not rep.failed
    st = eng.store.stats()
    assert st.documents == n and st.pages == n
    assert st.vectors == st.feature_cells  # every stored cell has its vector, none twice
    again = eng.index(docs)
    assert again.added == 0 and eng.store.stats().documents == n
    assert eng.store.verify() == []  # every page's vectors, in FAISS or in Milvus, and none twice

"""The official TokenOCR format end to end on CPU: index, search and heatmap with a tiny checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from boxes import iou
from tokenocr_factory import make_tiny_checkpoint
from tokensearch.engine import Engine
from tokensearch.samples import SampleFolder, born_digital_pdf, image_only_pdf, rasterise_pdf
from tokensearch.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_tiny_official_checkpoint_indexes_and_searches_a_folder(tmp_path):
    # the tiny checkpoint's 56 px tiles make ~50 px cells on a page: big type keeps one glyph per cell
    pdf, words = born_digital_pdf([["INVOICE 42", "Total due"], ["harbour crane", "spare parts"]], fontsize=60)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "born-digital.pdf").write_bytes(pdf)
    (docs / "scanned.pdf").write_bytes(image_only_pdf(rasterise_pdf(pdf)))
    sample = SampleFolder(docs, docs / "born-digital.pdf", docs / "scanned.pdf", [], docs / "none",
                          docs / "none.jpg", words)
    ckpt = make_tiny_checkpoint(tmp_path / "TokenOCR")
    spec = f"tokenocr:{ckpt}"
    with Engine(Settings(home=tmp_path / "home", model=spec)) as eng:
        rep = eng.index(sample.root)
        assert not rep.failed and rep.pages_text == 2 and rep.pages_vision == 2
        assert eng.search('"harbour crane"').hits[0].page == 2
        st = eng.store.stats()
        assert st.model["name"] == spec and st.pages == 4
        # born-digital pages carry the checkpoint's own token vectors: exact hits with real boxes (the
        # random tiny vision model may rank its own pages anywhere)
        hits = [h for h in eng.search("INVOICE", k=10).hits if Path(h.path).name == "born-digital.pdf"]
        assert [h.page for h in hits] == [1]
        hit = hits[0]
        assert hit.score > 0.99
        assert max(iou(b, t) for b in hit.boxes for t in sample.boxes("INVOICE", 1)) >= 0.3
        maps = eng.token_maps(hit.doc_id, hit.page, "INVOICE")
        assert maps.maps.shape[0] == len(maps.tokens) >= 1 and maps.combined.max() > 0.9
    # the vocabulary check on request: the whole token table, projected to index space, is the competitor set
    with Engine(Settings(home=tmp_path / "home", model=spec, verify_weight=4.0, threshold=0.0)) as eng:
        opt = eng.searcher().opt
        assert opt.competitors is not None and opt.competitors.shape[1] == eng.store.project_queries(
            eng.query_encoder.embed_query("INVOICE").vectors).shape[1]
        hits = [h for h in eng.search("INVOICE", k=10).hits if Path(h.path).name == "born-digital.pdf"]
        assert [h.page for h in hits] == [1]  # exact text-layer pages are never re-scored
    with Engine(Settings(home=tmp_path / "home", model="mini")) as other:
        try:
            other.search("INVOICE")
        except Exception as e:  # noqa: BLE001
            assert "built with model 'tokenocr:" in str(e)
        else:
            raise AssertionError("a query with another model must be refused")


def test_heatmap_command_with_the_tiny_checkpoint(tmp_path, sample):
    ckpt = make_tiny_checkpoint(tmp_path / "TokenOCR")
    out = tmp_path / "maps"
    r = subprocess.run([sys.executable, "-m", "tokensearch", "heatmap", str(sample.image_pdf), "harbour crane",
                        "-o", str(out), "--page", "2", "--model", f"tokenocr:{ckpt}"],
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    files = sorted(p.name for p in out.glob("*.png"))
    assert len(files) >= 3  # one per token (at least two words) + the whole-query map

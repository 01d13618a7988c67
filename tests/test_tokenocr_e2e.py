"""The official TokenOCR format end to end on CPU: index, search and heatmap with a tiny checkpoint (English,
and Chinese with a bilingual one: engine, CLI and API)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.boxes import iou
from tests.builders import text_boxes, write_pdf
from tests.cjk_docs import CJK_PAGES
from tests.tokenocr_factory import make_tiny_checkpoint
from tokensearch.api.app import create_app
from tokensearch.engine import Engine
from tokensearch.samples import SampleFolder, born_digital_pdf, image_only_pdf, rasterise_pdf
from tokensearch.settings import Settings

# integration: the TokenOCR format through the engine, the CLI and the API
pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]


def test_tiny_official_checkpoint_indexes_and_searches_a_folder(tmp_path):
    # the tiny checkpoint's 56 px tiles make ~50 px cells on a page: big type keeps one glyph per cell
    pdf, words = born_digital_pdf([["INVOICE 42", "Total due"], ["harbour crane", "spare parts"]], fontsize=60)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "born-digital.pdf").write_bytes(pdf)
    (docs / "scanned.pdf").write_bytes(image_only_pdf(rasterise_pdf(pdf)))
    sample = SampleFolder(
        docs, docs / "born-digital.pdf", docs / "scanned.pdf", [], docs / "none", docs / "none.jpg", words
    )
    ckpt = make_tiny_checkpoint(tmp_path / "TokenOCR")
    spec = f"tokenocr:{ckpt}"
    with Engine(Settings(home=tmp_path / "home", model=spec)) as eng:
        rep = eng.index(sample.root)
        assert not rep.failed and rep.pages_text == 2 and rep.pages_vision == 2
        assert eng.search('"harbour crane"').hits[0].page == 2
        st = eng.store.stats()
        assert st.model is not None and st.model.name == spec and st.pages == 4
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
        assert (
            opt.competitors is not None
            and opt.competitors.shape[1]
            == eng.store.project_queries(eng.query_encoder.embed_query("INVOICE").vectors).shape[1]
        )
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
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "tokensearch",
            "heatmap",
            str(sample.image_pdf),
            "harbour crane",
            "-o",
            str(out),
            "--page",
            "2",
            "--model",
            f"tokenocr:{ckpt}",
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    files = sorted(p.name for p in out.glob("*.png"))
    assert len(files) >= 3  # one per token (at least two words) + the whole-query map


# -- Chinese (TokenOCR-2048-Bilingual, -4096-Chinese) ---------------------------------------------------------

# query -> (page, the text on that page whose box the hit must have); the lines have no spaces
ZH_QUERIES = {
    "总金额": (1, "总金额"),  # the middle of "发票总金额为人民币一千二百元整"
    "发票": (1, "发票"),
    "金额为人民币": (1, "金额为人民币"),
    "2020年12月11日": (1, "2020年12月11日"),
    "12月11日": (1, "12月11日"),
    '"付款日期"': (1, "付款日期"),
    "INV-2023-0042": (1, "INV-2023-0042"),
    "已付款": (1, "已付款"),
    "中华": (3, "中华"),  # 华 is not in the tiny vocabulary: three UTF-8 byte pieces
}


@pytest.fixture(scope="module")
def zh_index(tmp_path_factory):
    """A tiny bilingual checkpoint and a born-digital Chinese PDF indexed with it (module-wide, read-only)."""
    tmp = tmp_path_factory.mktemp("zh")
    pdf = write_pdf(tmp / "docs" / "fapiao.pdf", CJK_PAGES)
    ckpt = make_tiny_checkpoint(tmp / "TokenOCR", bilingual=True)
    settings = Settings(home=tmp / "home", model=f"tokenocr:{ckpt}", roots=[pdf.parent])
    with Engine(settings) as eng:
        rep = eng.index(pdf.parent)
        assert not rep.failed and rep.pages_text == 3
    return settings, pdf


@pytest.mark.parametrize("query", ZH_QUERIES)
def test_chinese_query_finds_and_boxes_any_part_of_a_line(zh_index, query):
    settings, pdf = zh_index
    page, text = ZH_QUERIES[query]
    with Engine(settings) as eng:
        hits = eng.search(query, k=5).hits
    assert [h.page for h in hits] == [page] and hits[0].score > 0.99, hits
    truth = text_boxes(pdf, page, text)
    assert max(iou(b, t) for b in hits[0].boxes for t in truth) >= 0.5, (hits[0].boxes, truth)


def test_chinese_text_written_nowhere_or_out_of_order_is_not_found(zh_index):
    settings, _ = zh_index
    with Engine(settings) as eng:
        assert eng.search("合同").hits == []
        assert eng.search("额总").hits == []  # both characters are on page 1, not in this order
        assert eng.search('"发票 人民币"').hits == []  # two lines, not one phrase
        assert [h.page for h in eng.search("发票 人民币").hits] == [1]  # both words: the page


def test_chinese_heatmap_on_a_text_layer_page_has_a_map_per_character(zh_index):
    settings, _ = zh_index
    with Engine(settings) as eng:
        hit = eng.search("总金额").hits[0]
        maps = eng.token_maps(hit.doc_id, hit.page, "总金额")
    assert [t.replace("\u2581", "") for t in maps.tokens] == ["总", "金", "额"]
    assert all(m.max() > 0.99 for m in maps.maps) and maps.combined.max() > 0.99


def test_chinese_query_from_the_cli_and_the_api(zh_index, tmp_path):
    settings, pdf = zh_index
    spec = settings.model
    home = tmp_path / "home"
    env = dict(os.environ, PYTHONPATH=str(ROOT), TOKENSEARCH_HOME=str(home))

    def cli(*args: str) -> str:
        r = subprocess.run(
            [sys.executable, "-m", "tokensearch", *args, "--model", spec],
            capture_output=True,
            text=True,
            encoding="utf-8",
            env=env,
            timeout=600,
            stdin=subprocess.DEVNULL,
        )
        assert r.returncode == 0, r.stderr[-2000:]
        return r.stdout

    assert "3 from text layers" in cli("index", str(pdf.parent))
    res = json.loads(cli("search", "总金额", "--json"))
    assert res["query"] == "总金额" and [(Path(h["path"]).name, h["page"]) for h in res["hits"]] == [("fapiao.pdf", 1)]
    truth = text_boxes(pdf, 1, "总金额")
    assert max(iou(b, t) for b in res["hits"][0]["boxes"] for t in truth) >= 0.5
    assert "fapiao.pdf" in cli("search", "总金额")  # the table, printed in UTF-8

    with Engine(settings) as eng, TestClient(create_app(settings, engine=eng)) as client:
        body = client.get("/api/v1/search", params={"q": "总金额"}).json()
        assert body["query"] == "总金额" and [(h["name"], h["page"]) for h in body["hits"]] == [("fapiao.pdf", 1)]
        assert max(iou(b, t) for b in body["hits"][0]["boxes"] for t in truth) >= 0.5
        hit = body["hits"][0]
        heat = client.get(
            f"/api/v1/pages/{hit['doc_id']}/{hit['page']}/heatmap", params={"q": "总金额", "format": "json"}
        ).json()
        assert heat["query"] == "总金额" and [t.replace("\u2581", "") for t in heat["tokens"]] == ["总", "金", "额"]

"""Search filters (path glob, type, modified dates, document) and the fields a hit carries.

A filter is applied inside the candidate search: a filtered query returns k hits when k exist, however far
below the unfiltered top k they rank. The same filter gives the same hits from the engine, the CLI (in
process or through a running server: tests/test_cli_server.py) and the API (here); the viewer's filter row
is tested in a browser in tests/test_viewer.py.
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pymupdf
import pytest
from fastapi.testclient import TestClient

from tests.api_fixtures import build_settings
from tests.builders import write_pdf
from tokensearch import cli
from tokensearch.api.app import create_app
from tokensearch.engine import Engine
from tokensearch.errors import QueryError
from tokensearch.filters import PathGlob, SearchFilter, iso_utc
from tokensearch.search import Searcher, SearchOptions
from tokensearch.storage.vectors import CELL_BITS, VectorIndex

API = "/api/v1"
JAN = datetime(2024, 1, 15, 12, tzinfo=timezone.utc).timestamp()
JUN = datetime(2024, 6, 15, 12, tzinfo=timezone.utc).timestamp()


# -- the glob rules ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "glob,rel,hit",
    [
        ("invoices/2024/*", "invoices/2024/a.pdf", True),
        ("invoices/2024/*", "invoices/2024/q1/a.pdf", True),  # a folder's glob also covers what is below it
        ("invoices/*/a.pdf", "invoices/2024/q1/a.pdf", False),  # * stays within one folder name
        ("invoices/**/a.pdf", "invoices/2024/q1/a.pdf", True),
        ("invoices/**/a.pdf", "invoices/a.pdf", True),
        ("*.pdf", "deep/down/x.pdf", True),  # no /: the file name at any depth
        ("*.pdf", "deep/down/x.png", False),
        ("invoices", "invoices/2024/a.pdf", True),
        ("invoice", "invoices/2024/a.pdf", False),
        ("scan-?.png", "scan-7.png", True),
        ("scan-[0-4].png", "scan-7.png", False),
        ("scan-[!0-4].png", "scan-7.png", True),
    ],
)
def test_relative_globs(glob, rel, hit):
    assert PathGlob(glob).matches("/data/" + rel, ["/data"]) is hit


def test_globs_relative_to_any_recorded_root_absolute_globs_to_absolute_paths():
    g = PathGlob("2024/*")
    assert g.matches("/data/invoices/2024/a.pdf", ["/data", "/data/invoices"])  # relative to the inner root
    assert not g.matches("/data/invoices/2024/a.pdf", ["/data"])
    assert not g.matches("/elsewhere/2024/a.pdf", ["/data"])  # under no root
    assert PathGlob("a.pdf").matches("/data/a.pdf", ["/data/a.pdf"])  # a file indexed by itself: its name
    assert PathGlob("/data/**/*.pdf").matches("/data/x/a.pdf", [])
    assert PathGlob("/data/*.pdf").literal_prefix() == "/data/"
    assert not PathGlob("/data/*.pdf").matches("/other/a.pdf", ["/other"])


def test_filter_values_are_checked():
    f = SearchFilter.of(path=" ", type="", modified_after="2024-02-01", modified_before="2024-03-01T00:00:00+01:00")
    assert f.path is None and f.type is None and f
    assert f.modified_after == datetime(2024, 2, 1, tzinfo=timezone.utc)
    assert f.params() == {"modified_after": "2024-02-01T00:00:00+00:00", "modified_before": "2024-03-01T00:00:00+01:00"}
    assert not SearchFilter.of() and not SearchFilter()
    for bad in (
        dict(modified_after="yesterday"),
        dict(modified_before="2024-13-01"),
        dict(type="docx"),
        dict(doc=0),
        dict(path="scan-[9-0].png"),
    ):
        with pytest.raises(QueryError):
            SearchFilter.of(**bad)


# -- the vector index searches the allowed pages only -----------------------------------------------------


@pytest.mark.parametrize("spec", [{"type": "flat"}, {"type": "ivf-sq8", "nlist": 4}])
@pytest.mark.parametrize("n_rows", [2, 6])  # FAISS's own search, and the blocked scan (5+ rows)
def test_vector_search_among_allowed_pages_is_the_exact_top_of_their_cells(spec, n_rows):
    rng = np.random.default_rng(0)
    d, pages = 16, list(range(1, 41))
    vecs = {p: rng.normal(size=(50, d)).astype(np.float32) for p in pages}
    for v in vecs.values():
        v /= np.linalg.norm(v, axis=1, keepdims=True)
    vi = VectorIndex.empty(d, spec, train_sample=np.concatenate(list(vecs.values())))
    for p in pages:
        vi.add_page(p, vecs[p], np.stack([np.arange(50), np.zeros(50)], axis=1))
    vi.remove_pages([7])  # rows of a page stay together after a removal
    allowed = np.array([3, 7, 11, 12, 39, 99], dtype=np.int64)  # 7 is gone, 99 never was
    q = rng.normal(size=(n_rows, d)).astype(np.float32)
    found = vi.search(q, 20, pages=allowed)
    for r, (got_pages, scores, cells) in enumerate(found):
        assert set(got_pages.tolist()) <= {3, 11, 12, 39}
        pool = [(float(vecs[p][c] @ q[r]), p, c) for p in (3, 11, 12, 39) for c in range(50)]
        want = sorted(pool, reverse=True)[:20]
        if spec["type"] == "flat":  # exact up to the int8 codes' step (~0.01 of a unit query's cosine)
            np.testing.assert_allclose(scores, [s for s, _, _ in want], atol=0.01 * np.linalg.norm(q[r]))
        assert len(got_pages) == 20 and (np.diff(scores) <= 1e-6).all()
        assert (cells[:, 0] >= 0).all()
    assert all(len(p) == 0 for p, _, _ in vi.search(q, 5, pages=np.array([7, 99], dtype=np.int64)))
    assert all(len(p) == 0 for p, _, _ in vi.search(q, 5, pages=np.zeros(0, np.int64)))
    assert CELL_BITS == 20


# -- the engine --------------------------------------------------------------------------------------------


# the tests on filtered_index: the integration tier (the vision model reads the scan among its documents)
VISION = pytest.mark.integration


@pytest.fixture(scope="module")
def filtered_index(tmp_path_factory, mini_encoder):
    """'crane' three times on each of 8 PDFs under common/ (they rank first), once on 3 PDFs under rare/ and
    on a PNG scan (an image); invoices dated January 2024, everything else June 2024."""
    tmp = tmp_path_factory.mktemp("filters")
    settings = build_settings(tmp)
    root = settings.roots[0]
    for i in range(8):
        write_pdf(root / "common" / f"c{i}.pdf", [[f"crane crane crane report {i}", "harbour"]])
    for i in range(3):
        write_pdf(root / "rare" / f"r{i}.pdf", [[f"the crane of the rare file {i}"], ["second page"]])
    write_pdf(root / "invoices" / "2024" / "inv.pdf", [["INVOICE for crane hire"]])
    (root / "scans").mkdir()
    with pymupdf.open(root / "rare" / "r0.pdf") as doc:  # a scan of r0's first page
        doc[0].get_pixmap(dpi=150).save(str(root / "scans" / "r0-scan.png"))
    for p in root.rglob("*.*"):
        os.utime(p, (JUN, JUN))
    os.utime(root / "invoices" / "2024" / "inv.pdf", (JAN, JAN))
    engine = Engine(settings, encoder=mini_encoder)
    assert not engine.index(root).failed
    yield engine, root
    engine.close()


def _names(hits) -> list[str]:
    return [Path(h.path).name for h in hits]


@VISION
def test_a_filtered_query_returns_k_hits_the_unfiltered_top_k_does_not_hold(filtered_index):
    engine, root = filtered_index
    top = engine.search("crane", k=3)
    assert all(n.startswith("c") for n in _names(top.hits))
    res = engine.search("crane", k=3, filter=SearchFilter(path="rare/*"))
    assert sorted(_names(res.hits)) == ["r0.pdf", "r1.pdf", "r2.pdf"] and res.total == 3
    # stage 1 through the vector index (more allowed pages than stage 2 scores anyway, and few cells a
    # token): the global top cells are the common files', the allowed pages' top cells are found all the same
    opts = SearchOptions(threshold=engine.threshold(), min_candidate_pages=1, max_candidate_pages=2, cells_per_token=8)
    searcher = Searcher(engine.query_encoder, engine.store, opts)
    assert not [n for n in _names(searcher.search("crane", 2, 0, 256).hits) if n.startswith("r")]
    narrowed = searcher.search("crane", 2, 0, 256, SearchFilter(path="rare"))
    assert len(narrowed.hits) == 2 and all(n.startswith("r") for n in _names(narrowed.hits))


@VISION
@pytest.mark.parametrize(
    "narrow,names",
    [
        (SearchFilter(type="image"), {"r0-scan.png"}),
        (SearchFilter(type="pdf", path="rare/**"), {"r0.pdf", "r1.pdf", "r2.pdf"}),
        (SearchFilter(path="*.png"), {"r0-scan.png"}),
        (SearchFilter(path="invoices/2024/*"), {"inv.pdf"}),
        (SearchFilter(modified_before=datetime(2024, 2, 1, tzinfo=timezone.utc)), {"inv.pdf"}),
        (SearchFilter(modified_after=datetime(2024, 2, 1, tzinfo=timezone.utc), path="invoices"), set()),
        (SearchFilter(path="nowhere/*"), set()),
    ],
)
def test_each_filter_lets_through_only_its_documents(filtered_index, narrow, names):
    engine, _ = filtered_index
    assert set(_names(engine.search("crane", k=20, filter=narrow).hits)) == names


@VISION
def test_filter_by_document_and_absolute_glob(filtered_index):
    engine, root = filtered_index
    doc_id = next(h.doc_id for h in engine.search("crane", k=20).hits if h.path.endswith("r1.pdf"))
    assert _names(engine.search("crane", k=5, filter=SearchFilter(doc=doc_id)).hits) == ["r1.pdf"]
    absolute = SearchFilter(path=str(root.resolve() / "common" / "c[12].pdf"))
    assert sorted(_names(engine.search("crane", k=5, filter=absolute).hits)) == ["c1.pdf", "c2.pdf"]


@VISION
def test_hits_carry_what_was_read_the_date_and_the_page_count(filtered_index):
    engine, root = filtered_index
    hit = engine.search("invoice", k=1).hits[0]
    assert Path(hit.path).name == "inv.pdf"
    assert hit.text == "INVOICE"  # the spelling on the page, not the query's
    assert hit.modified == iso_utc(int(JAN * 1e9)) == "2024-01-15T12:00:00+00:00"
    assert (hit.pages, hit.kind) == (1, "pdf")
    rare = engine.search('"the crane"', k=5, filter=SearchFilter(path="rare")).hits
    assert rare and all(h.text == "the crane" and h.pages == 2 for h in rare)
    scan = engine.search("crane", k=1, filter=SearchFilter(type="image")).hits[0]
    assert scan.kind == "image" and scan.pages == 1 and scan.text.lower() == "crane"


# -- the API and the CLI -----------------------------------------------------------------------------------


@VISION
def test_api_filters_match_the_engine_and_hits_carry_the_new_fields(filtered_index):
    engine, root = filtered_index
    with TestClient(create_app(engine.settings, engine=engine)) as client:
        for params, narrow in [
            ({"path": "rare/*"}, SearchFilter(path="rare/*")),
            ({"type": "image"}, SearchFilter(type="image")),
            ({"modified_before": "2024-02-01"}, SearchFilter.of(modified_before="2024-02-01")),
        ]:
            body = client.get(f"{API}/search", params={"q": "crane", "k": 3, **params}).json()
            want = engine.search("crane", k=3, filter=narrow)
            assert [(h["path"], h["page"], h["score"]) for h in body["hits"]] == [
                (h.path, h.page, h.score) for h in want.hits
            ], params
        hit = client.get(f"{API}/search", params={"q": "invoice", "k": 1}).json()["hits"][0]
        assert (hit["text"], hit["modified"], hit["pages"], hit["type"]) == (
            "INVOICE",
            "2024-01-15T12:00:00+00:00",
            1,
            "pdf",
        )
        assert hit["file_url"] == f"{API}/documents/{hit['doc_id']}/file#page=1"
        original = client.get(hit["file_url"].split("#")[0])
        assert original.status_code == 200 and original.headers["content-type"] == "application/pdf"
        assert original.content == (root / "invoices" / "2024" / "inv.pdf").read_bytes()
        assert "inline" in original.headers["content-disposition"]
        assert client.get(f"{API}/documents/999999/file").status_code == 404
        bad = client.get(f"{API}/search", params={"q": "crane", "modified_after": "soon"})
        assert bad.status_code == 400 and "modified_after" in bad.json()["error"]["message"]
        assert client.get(f"{API}/search", params={"q": "crane", "type": "docx"}).status_code == 422
        spec = client.get("/openapi.json").json()
        params = {p["name"] for p in spec["paths"][f"{API}/search"]["get"]["parameters"]}
        assert {"path", "type", "modified_after", "modified_before", "doc"} <= params
        hit_schema = spec["components"]["schemas"]["HitOut"]["properties"]
        assert {"text", "modified", "pages", "type", "file_url"} <= set(hit_schema)
        assert f"{API}/documents/{{doc_id}}/file" in spec["paths"]


@VISION
def test_the_original_file_is_served_only_inside_the_roots(filtered_index, tmp_path):
    engine, root = filtered_index
    outside = write_pdf(tmp_path / "outside.pdf", [["crane outside the roots"]])
    engine.index(outside)
    doc = next(h.doc_id for h in engine.search("outside", k=1).hits)
    try:
        with TestClient(create_app(engine.settings, engine=engine)) as client:
            r = client.get(f"{API}/documents/{doc}/file")
            assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    finally:
        engine.remove(outside)


@VISION
def test_cli_filters_and_json_fields(filtered_index, capsys):
    engine, root = filtered_index
    home = str(engine.settings.home)
    assert cli.main(["search", "crane", "--home", home, "--json", "-k", "3", "--path", "rare/*", "--no-server"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert sorted(Path(h["path"]).name for h in out["hits"]) == ["r0.pdf", "r1.pdf", "r2.pdf"]
    h = out["hits"][0]
    assert list(h)[:4] == ["path", "page", "score", "boxes"]  # DESIGN.md §5, then the added fields
    assert h["text"] == "crane" and h["pages"] == 2 and h["type"] == "pdf" and h["modified"].startswith("2024-06-15")
    assert (
        cli.main(
            [
                "search",
                "crane",
                "--home",
                home,
                "--json",
                "--type",
                "image",
                "--modified-after",
                "2024-06-01",
                "--no-server",
            ]
        )
        == 0
    )
    assert [Path(h["path"]).name for h in json.loads(capsys.readouterr().out)["hits"]] == ["r0-scan.png"]
    assert cli.main(["search", "crane", "--home", home, "--modified-after", "June", "--no-server"]) == 2
    assert "modified_after" in capsys.readouterr().err


def test_a_duplicate_is_shown_at_the_path_the_filter_matched(tmp_path, mini_encoder):
    settings = build_settings(tmp_path)
    root = settings.roots[0]
    first = write_pdf(root / "inbox" / "memo.pdf", [["the pelican memo"]])
    (root / "archive").mkdir()
    (root / "archive" / "memo-2024.pdf").write_bytes(first.read_bytes())  # same content: one document, two paths
    os.utime(root / "archive" / "memo-2024.pdf", (JAN, JAN))
    os.utime(first, (JUN, JUN))
    with Engine(settings, encoder=mini_encoder) as engine:
        assert not engine.index(root).failed
        (hit,) = engine.search("pelican", k=5).hits
        assert hit.path.endswith("archive/memo-2024.pdf")  # the first path in sort order
        (hit,) = engine.search("pelican", k=5, filter=SearchFilter(path="inbox/*")).hits
        assert hit.path.endswith("inbox/memo.pdf") and hit.modified == iso_utc(int(JUN * 1e9))
        (hit,) = engine.search("pelican", k=5, filter=SearchFilter.of(modified_after="2024-03-01")).hits
        assert hit.path.endswith("inbox/memo.pdf")


def test_filters_on_sqlite_and_postgresql(tmp_path, make_engine):
    root = tmp_path / "docs"
    write_pdf(root / "a" / "one.pdf", [["walrus census"], ["walrus again"]])
    write_pdf(root / "b" / "two.pdf", [["walrus tally"]])
    os.utime(root / "a" / "one.pdf", (JAN, JAN))
    engine = make_engine()
    assert not engine.index(root).failed
    store = engine.store
    assert len(store.filter_pages(SearchFilter(path="a"))) == 2
    assert len(store.filter_pages(SearchFilter(path=str(root.resolve()) + "/b/*.pdf"))) == 1
    assert len(store.filter_pages(SearchFilter.of(modified_before="2024-02-01", type="pdf"))) == 2
    assert len(store.filter_pages(SearchFilter(type="image"))) == 0
    hits = engine.search("walrus", k=5, filter=SearchFilter.of(modified_after="2024-02-01")).hits
    assert [Path(h.path).name for h in hits] == ["two.pdf"] and hits[0].pages == 1


def test_a_link_inside_a_root_to_a_file_outside_is_not_served(tmp_path, mini_encoder):
    settings = build_settings(tmp_path)
    root = settings.roots[0]
    secret = write_pdf(tmp_path / "private" / "secret.pdf", [["narwhal accounts"]])
    (root / "innocent.pdf").symlink_to(secret)
    with Engine(settings, encoder=mini_encoder) as engine:
        engine.index(root)
        hits = engine.search("narwhal", k=1).hits
        assert hits, "a link to a file is indexed (links to folders are not followed)"
        with TestClient(create_app(settings, engine=engine)) as client:
            for h in hits:  # however the indexer took the link, its file is not handed out
                r = client.get(f"{API}/documents/{h.doc_id}/file")
                assert r.status_code == 403 and b"narwhal" not in r.content
            assert client.get(f"{API}/documents/1/file/..%2F..%2Fprivate%2Fsecret.pdf").status_code == 404


def _like_regex(pattern: str) -> re.Pattern[str]:
    """What SQL's LIKE ... ESCAPE '\\' matches, as a regular expression (case-sensitive, like PostgreSQL)."""
    out, chars = [], iter(pattern)
    for c in chars:
        out.append(re.escape(next(chars)) if c == "\\" else ".*" if c == "%" else "." if c == "_" else re.escape(c))
    return re.compile("".join(out), re.DOTALL)


@pytest.mark.parametrize(
    "glob,rel",
    [
        ("invoices/2024/*", "invoices/2024/a.pdf"),
        ("invoices/**/a.pdf", "invoices/a.pdf"),
        ("*.pdf", "x/y.pdf"),
        ("**/a_1%.pdf", "a_1%.pdf"),
        ("scan-[0-4].png", "scan-3.png"),
        ("invoices", "invoices/2024/a.pdf"),
        ("invoices/2024/", "invoices/2024/q1/a.pdf"),
    ],
)
def test_the_sql_prefilter_lets_every_match_through(glob, rel):
    root = "/data/in_box"
    g = PathGlob(glob)
    path = f"{root}/{rel}"
    assert g.matches(path, [root])
    like = [_like_regex(p) for p in g.like_patterns([root])]
    assert any(rx.fullmatch(path) for rx in like), (glob, g.like_patterns([root]))
    assert not any(rx.fullmatch("/elsewhere/zzz.txt") for rx in like)
    assert any(rx.fullmatch(root) for rx in like) is ("/" in glob.rstrip("/"))  # a file indexed by itself


def test_a_name_that_is_not_utf8_is_found_by_a_glob(tmp_path, make_engine):
    root = tmp_path / "docs"
    pdf = write_pdf(root / "sub" / "plain.pdf", [["ocelot sighting"]])
    odd = os.fsencode(root / "sub") + b"/caf\xe9.pdf"  # stored as a file:// URI in the database
    os.rename(pdf, odd)
    engine = make_engine()
    assert not engine.index(root).failed
    for glob in ("sub/*", "caf*.pdf", "*.pdf"):
        hits = engine.search("ocelot", k=5, filter=SearchFilter(path=glob)).hits
        assert [os.fsencode(h.path) for h in hits] == [odd], glob
    assert engine.search("ocelot", k=5, filter=SearchFilter(path="*.png")).hits == []

"""The REST API in-process (TestClient) on a temporary index of generated PDFs: every endpoint, its errors."""

from __future__ import annotations

import io
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.api_fixtures import (  # noqa: F401  (api_env is a fixture)
    DOCS,
    api_env,
    assert_error,
    build_settings,
    iou,
    make_docs,
    wait_job,
)
from tests.builders import pdf_bytes, word_boxes, write_pdf
from tokensearch.api.app import create_app
from tokensearch.engine import Engine

# integration: the API over an index the vision model builds from generated PDFs
pytestmark = pytest.mark.integration

API = "/api/v1"


# -- search ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "word,name,page",
    [
        ("INV-2023-0042", "invoice.pdf", 1),
        ("crane", "minutes.pdf", 1),
        ("thirty", "invoice.pdf", 2),
        ("ZX-99812", "letter.pdf", 1),
    ],
)
def test_search_finds_the_page_and_boxes_the_word(api_env, word, name, page):
    r = api_env.client.get(f"{API}/search", params={"q": word})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["query"] == word and body["total"] >= 1 and body["took_ms"] >= 0
    top = body["hits"][0]
    assert (top["name"], top["page"]) == (name, page)
    assert top["path"] == str(api_env.root / name)
    assert top["width"] > 0 and top["height"] > 0 and top["doc_id"] >= 1 and top["page_id"] >= 1
    truth = word_boxes(api_env.root / name, page, word)
    assert truth, "test setup: the word is on the page"
    assert max(iou(b, t) for b in top["boxes"] for t in truth) >= 0.5, (top["boxes"], truth)
    for b in top["boxes"]:
        assert 0 <= b[0] < b[2] <= 1 and 0 <= b[1] < b[3] <= 1
    # the URLs it gives are served
    assert api_env.client.get(top["image_url"]).status_code == 200
    thumb = api_env.client.get(top["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/webp"


def test_search_without_match_returns_no_hits(api_env):
    body = api_env.client.get(f"{API}/search", params={"q": "xylophonequartz"}).json()
    assert body["hits"] == [] and body["total"] == 0


def test_search_pagination_with_k_and_offset(api_env):
    everything = api_env.client.get(f"{API}/search", params={"q": "harbour", "k": 10}).json()["hits"]
    assert len(everything) >= 2
    first = api_env.client.get(f"{API}/search", params={"q": "harbour", "k": 1}).json()["hits"]
    second = api_env.client.get(f"{API}/search", params={"q": "harbour", "k": 1, "offset": 1}).json()["hits"]
    assert [(h["doc_id"], h["page"]) for h in first + second] == [(h["doc_id"], h["page"]) for h in everything[:2]]


@pytest.mark.parametrize(
    "params,fragment",
    [
        ({}, "q"),
        ({"q": ""}, "q"),
        ({"q": "   "}, "q"),
        ({"q": "x", "k": 0}, "k"),
        ({"q": "x", "k": "ten"}, "k"),
        ({"q": "x", "offset": -1}, "offset"),
        ({"q": "x" * 257}, "256"),
        ({"q": "x", "k": 101}, "100"),
    ],
)
def test_search_rejects_bad_parameters_with_the_error_shape(api_env, params, fragment):
    err = assert_error(api_env.client.get(f"{API}/search", params=params), 422, "validation_error")
    assert fragment in err["message"]


# -- documents ------------------------------------------------------------------------------------------


def test_documents_list_get_and_pagination(api_env):
    body = api_env.client.get(f"{API}/documents").json()
    assert body["total"] == len(DOCS) and body["offset"] == 0
    names = sorted(d["name"] for d in body["items"])
    assert names == sorted(DOCS)
    inv = next(d for d in body["items"] if d["name"] == "invoice.pdf")
    assert inv["pages"] == 2 and inv["status"] == "ok" and inv["path"] == str(api_env.root / "invoice.pdf")
    one = api_env.client.get(f"{API}/documents/{inv['id']}").json()
    assert one["id"] == inv["id"] and one["pages"] == 2 and one["thumbnail_url"]
    page2 = api_env.client.get(f"{API}/documents", params={"limit": 1, "offset": 1}).json()["items"]
    assert len(page2) == 1 and page2[0]["id"] == body["items"][1]["id"]
    assert api_env.client.get(f"{API}/documents", params={"status": "failed"}).json()["items"] == []


def test_documents_errors(api_env):
    assert_error(api_env.client.get(f"{API}/documents/99999"), 404, "not_found")
    assert_error(api_env.client.get(f"{API}/documents/abc"), 422, "validation_error")
    assert_error(api_env.client.get(f"{API}/documents", params={"status": "weird"}), 422, "validation_error")
    assert_error(api_env.client.get(f"{API}/documents", params={"limit": 0}), 422, "validation_error")
    assert_error(api_env.client.delete(f"{API}/documents/99999"), 404, "not_found")


def test_delete_document_removes_it_from_search_and_cache(api_env):
    c = api_env.client
    hit = c.get(f"{API}/search", params={"q": "ZX-99812"}).json()["hits"][0]
    assert c.get(hit["thumbnail_url"]).status_code == 200
    assert (api_env.home / "cache" / "pages" / str(hit["doc_id"])).exists()
    r = c.delete(f"{API}/documents/{hit['doc_id']}")
    assert r.status_code == 200 and r.json() == {"id": hit["doc_id"], "deleted": True}
    assert not (api_env.home / "cache" / "pages" / str(hit["doc_id"])).exists()
    assert_error(c.get(f"{API}/documents/{hit['doc_id']}"), 404)
    assert all(h["doc_id"] != hit["doc_id"] for h in c.get(f"{API}/search", params={"q": "ZX-99812"}).json()["hits"])
    assert_error(c.get(hit["image_url"]), 404)


# -- uploads --------------------------------------------------------------------------------------------


def test_upload_pdf_is_stored_indexed_and_searchable(api_env):
    c = api_env.client
    data = pdf_bytes([["Quarterly report", "Penguin migration statistics"]])
    r = c.post(
        f"{API}/documents",
        params={"wait": "true"},
        files={"file": ("../../evil name?.bin", data, "application/octet-stream")},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    f = body["files"][0]
    assert f["content_type"] == "application/pdf" and f["bytes"] == len(data)
    stored = api_env.home / "uploads"
    assert f["stored_path"].startswith(str(stored)) and f["stored_path"].endswith(".pdf")
    assert ".." not in f["stored_path"] and "?" not in f["stored_path"]
    assert body["job"]["status"] == "done" and body["job"]["kind"] == "upload"
    hits = c.get(f"{API}/search", params={"q": "Penguin"}).json()["hits"]
    assert hits and hits[0]["path"] == f["stored_path"]
    assert c.get(hits[0]["image_url"]).status_code == 200  # uploads are inside the allowed roots


def test_upload_without_waiting_returns_a_job_to_poll(api_env):
    pdf = pdf_bytes([["Walrus memo", "Filed by the archive team"]])
    r = api_env.client.post(f"{API}/documents", files={"file": ("memo.pdf", pdf)})
    assert r.status_code == 202
    job = wait_job(api_env.client, r.json()["job"]["id"])
    assert job["status"] == "done", job
    assert api_env.client.get(f"{API}/search", params={"q": "Walrus"}).json()["hits"]


def test_upload_png_scan_is_accepted_by_magic_bytes(api_env, monkeypatch):
    img = Image.new("RGB", (200, 100), "white")
    buf = io.BytesIO()
    img.save(buf, "PNG")
    calls = []
    monkeypatch.setattr(api_env.engine, "index_files", lambda paths, root, progress=None: calls.append(paths))
    r = api_env.client.post(
        f"{API}/documents", params={"wait": "true"}, files={"file": ("scan.pdf", buf.getvalue(), "application/pdf")}
    )  # the name lies
    assert r.status_code in (201, 202), r.text
    f = r.json()["files"][0]
    assert f["content_type"] == "image/png" and f["stored_path"].endswith("scan.png")
    assert calls and str(calls[0][0]) == f["stored_path"]


def test_upload_errors(api_env):
    c = api_env.client
    assert_error(
        c.post(f"{API}/documents", files={"file": ("x.pdf", b"MZ\x90\x00 not a pdf")}), 415, "unsupported_media_type"
    )
    assert_error(c.post(f"{API}/documents", files={"file": ("x.pdf", b"")}), 415)
    assert_error(c.post(f"{API}/documents", files={"note": (None, "no file")}), 422, "validation_error")
    assert_error(c.post(f"{API}/documents", data={"note": "no file"}), 415, "unsupported_media_type")
    assert_error(c.post(f"{API}/documents", content=b"%PDF-1.4", headers={"content-type": "application/pdf"}), 415)
    assert not list((api_env.home / "uploads").glob("*/*")), "rejected uploads leave nothing behind"
    assert not list((api_env.home / "uploads" / ".incoming").glob("*"))


def test_oversize_upload_is_refused_with_413_and_leaves_nothing(tmp_path, mini_encoder):
    settings = build_settings(tmp_path, max_upload_bytes=10_000)
    engine = Engine(settings, encoder=mini_encoder)
    with TestClient(create_app(settings, engine=engine)) as c:
        big = b"%PDF-1.4\n" + b"0" * 50_000
        assert_error(c.post(f"{API}/documents", files={"file": ("big.pdf", big)}), 413, "payload_too_large")

        def chunks():  # no Content-Length: the limit is enforced while streaming
            boundary = b"XyZ"
            yield b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="big.pdf"\r\n\r\n'
            for _ in range(20):
                yield b"%PDF" + b"1" * 4000
            yield b"\r\n--" + boundary + b"--\r\n"

        r = c.post(f"{API}/documents", content=chunks(), headers={"content-type": "multipart/form-data; boundary=XyZ"})
        assert_error(r, 413, "payload_too_large")
        small = pdf_bytes([["tiny"]])
        assert len(small) < 10_000
        assert c.post(f"{API}/documents", files={"file": ("ok.pdf", small)}).status_code == 202
    engine.close()
    uploads = settings.home / "uploads"
    assert [p.name for p in uploads.glob("*/*.pdf")] == ["ok.pdf"]
    assert not list((uploads / ".incoming").glob("*"))


# -- index jobs -----------------------------------------------------------------------------------------


def test_index_job_indexes_a_new_folder_and_reports_progress(api_env):
    c = api_env.client
    write_pdf(api_env.root / "new" / "fresh.pdf", [["Aardvark bulletin", "volume 7"], ["second page"]])
    r = c.post(f"{API}/index-jobs", json={"path": "new"})  # relative to the root
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] in ("queued", "running", "done") and job["kind"] == "folder"
    assert job["path"] == str((api_env.root / "new").resolve())
    done = wait_job(c, job["id"])
    assert done["status"] == "done", done
    assert done["report"]["added"] == 1 and done["report"]["pages"] == 2 and done["report"]["failed"] == []
    p = done["progress"]
    assert p["pages_done"] == 2 and p["pages_total"] >= 2 and p["files_done"] == 1 and p["failures"] == 0
    assert done["started_at"] and done["finished_at"]
    assert c.get(f"{API}/search", params={"q": "Aardvark"}).json()["hits"][0]["name"] == "fresh.pdf"
    listed = c.get(f"{API}/index-jobs").json()["items"]
    assert listed[0]["id"] == job["id"]
    removed = c.delete(f"{API}/index-jobs/{job['id']}").json()  # a finished job's record is removed
    assert removed["status"] == "done"
    assert_error(c.get(f"{API}/index-jobs/{job['id']}"), 404, "not_found")


def test_index_job_reports_failed_files(api_env):
    (api_env.root / "broken").mkdir()
    (api_env.root / "broken" / "bad.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    job = api_env.client.post(f"{API}/index-jobs", json={"path": str(api_env.root / "broken")}).json()
    done = wait_job(api_env.client, job["id"])
    assert done["status"] == "done"
    assert done["progress"]["failures"] == 1 and done["report"]["failed"][0][0].endswith("bad.pdf")
    listing = api_env.client.get(f"{API}/documents", params={"status": "failed"}).json()
    failed = listing["items"]
    assert failed and failed[0]["failure"] and failed[0]["id"] is None and listing["total"] == 1
    everything = api_env.client.get(f"{API}/documents").json()
    assert everything["total"] == len(DOCS) + 1 and len(everything["items"]) == len(DOCS) + 1


def test_index_job_errors(api_env):
    c = api_env.client
    assert_error(c.get(f"{API}/index-jobs/nope"), 404, "not_found")
    assert_error(c.delete(f"{API}/index-jobs/nope"), 404, "not_found")
    assert_error(c.post(f"{API}/index-jobs", json={}), 422, "validation_error")
    assert_error(c.post(f"{API}/index-jobs", json={"path": "x", "extra": 1}), 422, "validation_error")
    assert_error(
        c.post(f"{API}/index-jobs", content=b"not json", headers={"content-type": "application/json"}),
        422,
        "validation_error",
    )
    assert_error(c.post(f"{API}/index-jobs", json={"path": "does-not-exist"}), 404, "not_found")


def test_search_keeps_answering_while_an_index_job_runs(api_env):
    c = api_env.client
    folder = api_env.root / "bulk"
    for i in range(12):
        write_pdf(folder / f"bulk-{i:02d}.pdf", [[f"Bulk page {i} of the archive", "Sphinx keyword"]] * 3)
    started = threading.Event()
    real_index = api_env.engine.index

    def slow_index(root, progress=None, cancel=None):
        started.set()

        def prog(ev):
            time.sleep(0.05)  # make the job last long enough to overlap the searches
            if progress:
                progress(ev)

        return real_index(root, progress=prog, cancel=cancel)

    api_env.engine.index = slow_index
    try:
        job = c.post(f"{API}/index-jobs", json={"path": "bulk"}).json()
        assert started.wait(10)
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda q: c.get(f"{API}/search", params={"q": q}), ["crane", "INV-2023-0042"] * 6))
        assert all(r.status_code == 200 for r in results), [r.text for r in results if r.status_code != 200]
        assert all(r.json()["hits"] for r in results)
        mid = c.get(f"{API}/index-jobs/{job['id']}").json()
        assert mid["status"] in ("running", "done")
        done = wait_job(c, job["id"])
        assert done["status"] == "done" and done["report"]["added"] == 12
    finally:
        api_env.engine.index = real_index
    assert c.get(f"{API}/search", params={"q": "Sphinx", "k": 50}).json()["total"] == 36


def test_cancel_a_running_job(api_env):
    c = api_env.client
    folder = api_env.root / "many"
    for i in range(6):
        write_pdf(folder / f"m{i}.pdf", [["Cancel me"]])
    gate = threading.Event()
    real_index = api_env.engine.index

    def gated(root, progress=None, cancel=None):
        gate.wait(10)
        return real_index(root, progress=progress, cancel=cancel)

    api_env.engine.index = gated
    try:
        job = c.post(f"{API}/index-jobs", json={"path": "many"}).json()
        time.sleep(0.2)
        assert c.delete(f"{API}/index-jobs/{job['id']}").status_code == 200
        gate.set()
        assert wait_job(c, job["id"])["status"] == "cancelled"
    finally:
        api_env.engine.index = real_index


def test_jobs_survive_a_restart_and_resume(tmp_path, mini_encoder):
    settings = build_settings(tmp_path)
    root = make_docs(settings.roots[0])
    state = settings.home / "api" / "jobs.json"
    state.parent.mkdir(parents=True)
    now = "2026-01-01T00:00:00+00:00"
    jobs = [
        {"id": "aaa", "kind": "folder", "path": str(root), "status": "running", "created_at": now, "progress": {}},
        {"id": "bbb", "kind": "folder", "path": str(tmp_path / "gone"), "status": "queued", "created_at": now},
        {"id": "ccc", "kind": "folder", "path": str(root), "status": "running", "created_at": now, "resumed": 3},
        {"id": "ddd", "kind": "folder", "path": str(root), "status": "done", "created_at": now},
    ]
    state.write_text(json.dumps({"version": 1, "jobs": jobs}))
    engine = Engine(settings, encoder=mini_encoder)
    with TestClient(create_app(settings, engine=engine)) as c:
        resumed = wait_job(c, "aaa")
        assert resumed["status"] == "done" and resumed["resumed"] == 1 and resumed["report"]["added"] == len(DOCS)
        gone = c.get(f"{API}/index-jobs/bbb").json()
        assert gone["status"] == "failed" and "resume" in gone["error"]
        too_often = c.get(f"{API}/index-jobs/ccc").json()
        assert too_often["status"] == "failed" and "interrupted" in too_often["error"]
        assert c.get(f"{API}/index-jobs/ddd").json()["status"] == "done"
        assert c.get(f"{API}/search", params={"q": "crane"}).json()["hits"]
    engine.close()
    saved = {j["id"]: j["status"] for j in json.loads(state.read_text())["jobs"]}
    assert saved == {"aaa": "done", "bbb": "failed", "ccc": "failed", "ddd": "done"}


def test_a_damaged_jobs_file_is_set_aside_not_fatal(tmp_path, mini_encoder):
    settings = build_settings(tmp_path)
    state = settings.home / "api" / "jobs.json"
    state.parent.mkdir(parents=True)
    state.write_text("{not json")
    engine = Engine(settings, encoder=mini_encoder)
    with TestClient(create_app(settings, engine=engine)) as c:
        assert c.get(f"{API}/index-jobs").json()["items"] == []
        assert c.get("/healthz").json()["status"] == "ok"
    engine.close()
    assert (state.parent / "jobs.json.broken").read_text() == "{not json"
    assert json.loads(state.read_text())["jobs"] == []


def test_a_job_running_at_shutdown_is_marked_interrupted(tmp_path, mini_encoder):
    settings = build_settings(tmp_path)
    make_docs(settings.roots[0])
    engine = Engine(settings, encoder=mini_encoder)
    gate = threading.Event()
    real_index = engine.index

    def blocked(root, progress=None, cancel=None):
        gate.wait(5)
        return real_index(root, progress=progress, cancel=cancel)

    engine.index = blocked
    with TestClient(create_app(settings, engine=engine)) as c:
        job = c.post(f"{API}/index-jobs", json={"path": "."}).json()
        time.sleep(0.2)
        threading.Timer(0.3, gate.set).start()
    engine.close()
    saved = {j["id"]: j for j in json.loads((settings.home / "api" / "jobs.json").read_text())["jobs"]}
    assert saved[job["id"]]["status"] == "interrupted"


# -- pages: images and heatmaps --------------------------------------------------------------------------


def _first_hit(c, q="crane"):
    return c.get(f"{API}/search", params={"q": q}).json()["hits"][0]


def test_page_image_formats_widths_and_disk_cache(api_env, monkeypatch):
    c = api_env.client
    hit = _first_hit(c)
    url = f"{API}/pages/{hit['doc_id']}/{hit['page']}/image"
    png = c.get(url, params={"format": "png", "width": 300})
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    im = Image.open(io.BytesIO(png.content))
    assert im.width == 320  # snapped up to a cached size
    assert abs(im.height / im.width - hit["height"] / hit["width"]) < 0.01
    etag = png.headers["etag"]
    same = c.get(url, params={"format": "png", "width": 300}, headers={"If-None-Match": etag})
    assert same.status_code == 304 and same.content == b"" and same.headers["etag"] == etag
    webp = c.get(url, params={"width": 640})
    assert webp.headers["etag"] != etag
    assert webp.headers["content-type"] == "image/webp" and Image.open(io.BytesIO(webp.content)).width == 640
    huge = Image.open(io.BytesIO(c.get(url, params={"width": 9000, "format": "png"}).content))
    assert huge.width <= hit["width"] + 1  # never upscaled
    # a cached picture is never rasterised again
    monkeypatch.setattr(api_env.engine, "page_image", lambda *a: pytest.fail("re-rasterised a cached page"))
    assert c.get(url, params={"format": "png", "width": 300}).content == png.content
    assert c.get(url, params={"width": 500}).status_code == 200  # a new width comes from the cached full page
    assert list((api_env.home / "cache" / "pages").rglob("p*-full.png"))


def test_page_image_errors(api_env):
    c = api_env.client
    hit = _first_hit(c)
    assert_error(c.get(f"{API}/pages/{hit['doc_id']}/99/image"), 404, "not_found")
    assert_error(c.get(f"{API}/pages/{hit['doc_id']}/0/image"), 422, "validation_error")
    assert_error(c.get(f"{API}/pages/4242/1/image"), 404, "not_found")
    assert_error(c.get(f"{API}/pages/{hit['doc_id']}/1/image", params={"format": "gif"}), 422, "validation_error")
    assert_error(c.get(f"{API}/pages/{hit['doc_id']}/1/image", params={"width": 1}), 422, "validation_error")


def test_heatmap_json_png_and_overlay(api_env):
    c = api_env.client
    hit = _first_hit(c, "crane")
    base = f"{API}/pages/{hit['doc_id']}/{hit['page']}/heatmap"
    j = c.get(base, params={"q": "crane", "format": "json"}).json()
    assert j["tokens"] and len(j["maps"]) == len(j["tokens"])
    assert len(j["combined"]) == j["grid_height"] and len(j["combined"][0]) == j["grid_width"]
    # the whole-query map peaks where the word is written
    flat = [(v, x, y) for y, row in enumerate(j["combined"]) for x, v in enumerate(row)]
    _, x, y = max(flat)
    cx, cy = (x + 0.5) / j["grid_width"], (y + 0.5) / j["grid_height"]
    b = word_boxes(api_env.root / "minutes.pdf", 1, "crane")[0]
    assert b[0] - 0.03 <= cx <= b[2] + 0.03 and b[1] - 0.03 <= cy <= b[3] + 0.03, ((cx, cy), b)
    small = c.get(base, params={"q": "crane", "format": "json", "max_side": 40}).json()
    assert max(small["grid_width"], small["grid_height"]) <= 40 and small["max"] == pytest.approx(j["max"], abs=1e-3)
    assert len(small["maps"][0]) == small["grid_height"] and len(small["maps"][0][0]) == small["grid_width"]
    png = c.get(base, params={"q": "crane"})
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    im = Image.open(io.BytesIO(png.content))
    assert im.mode == "RGBA" and im.getextrema()[3][1] > 0  # a visible, transparent overlay
    tok = Image.open(io.BytesIO(c.get(base, params={"q": "crane", "token": 0, "width": 300}).content))
    assert tok.width == 300
    over = Image.open(io.BytesIO(c.get(base, params={"q": "crane", "overlay": "true", "width": 400}).content))
    assert over.mode == "RGB" and over.width == 400
    assert_error(c.get(base, params={"q": "crane", "token": 99}), 422, "validation_error")
    assert_error(c.get(base, params={"q": ""}), 422, "validation_error")
    assert_error(c.get(base, params={"q": "crane", "format": "svg"}), 422, "validation_error")
    assert_error(c.get(f"{API}/pages/{hit['doc_id']}/77/heatmap", params={"q": "crane"}), 404, "not_found")


# -- health, metrics, errors ------------------------------------------------------------------------------


def test_healthz_and_metrics(api_env):
    c = api_env.client
    h = c.get("/healthz").json()
    assert h["status"] == "ok" and h["documents"] == len(DOCS) and h["pages"] == 4 and h["auth"] is False
    c.get(f"{API}/search", params={"q": "crane"})
    c.get(f"{API}/documents/123456")
    text = c.get("/metrics").text
    assert c.get("/metrics").headers["content-type"].startswith("text/plain")
    assert 'tokensearch_http_requests_total{method="GET",route="/api/v1/search",status="200"} 1' in text
    assert 'route="/api/v1/documents/{doc_id}",status="404"' in text  # templates, not raw paths
    assert "tokensearch_http_request_duration_seconds_bucket" in text and 'le="+Inf"' in text
    assert "tokensearch_pages_indexed 4" in text and "tokensearch_documents 3" in text
    assert "tokensearch_index_bytes" in text


def test_viewer_and_static_files_are_served(api_env):
    c = api_env.client
    r = c.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "default-src 'self'" in r.headers["content-security-policy"]
    for name in ("colormap.js", "viewer.js", "viewer.css", "favicon.svg"):
        assert c.get(f"/static/{name}").status_code == 200
        assert f"/static/{name}" in r.text
    assert "http://" not in r.text and "https://" not in r.text  # no CDN: works offline
    assert_error(c.get("/static/nope.js"), 404)


def test_every_error_has_the_one_shape(api_env):
    c = api_env.client
    assert_error(c.get("/no/such/route"), 404, "not_found")
    assert_error(c.get(f"{API}/nothing-here"), 404, "not_found")
    assert_error(c.put(f"{API}/search"), 405, "method_not_allowed")
    assert_error(c.post("/healthz"), 405)
    assert_error(c.get(f"{API}/search"), 422, "validation_error")


def test_every_api_operation_answers_bad_requests_in_the_one_shape(api_env):
    """Walk the OpenAPI spec: each operation, called with bad path parameters and no body/query, fails
    with a 4xx in the error shape (the list endpoints get an invalid limit)."""
    spec = api_env.client.get("/openapi.json").json()
    seen = 0
    for path, ops in spec["paths"].items():
        if not path.startswith(API):
            continue
        for method in ops:
            url = re.sub(r"\{[^}]+\}", "-1", path)
            r = api_env.client.request(method.upper(), url, params={"limit": 0} if "{" not in path else None)
            if method == "get" and path == f"{API}/index-jobs":
                assert r.status_code == 200  # nothing invalid to send to a parameterless list
                continue
            assert 400 <= r.status_code < 500, (method, url, r.status_code, r.text)
            assert_error(r, r.status_code)
            seen += 1
    assert seen >= 10


def test_unexpected_errors_are_500_with_the_shape_and_no_leak(api_env, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("secret internal detail /etc/passwd")

    monkeypatch.setattr(api_env.engine, "search", boom)
    with TestClient(api_env.client.app, raise_server_exceptions=False) as c:
        err = assert_error(c.get(f"{API}/search", params={"q": "x"}), 500, "internal_error")
        assert "secret" not in err["message"]


def test_engine_errors_keep_their_status(api_env, monkeypatch):
    from tokensearch.errors import ModelMismatchError, QueryError

    def mismatch(*a, **k):
        raise ModelMismatchError("index built with another model: search with --model X")

    monkeypatch.setattr(api_env.engine, "search", mismatch)
    err = assert_error(api_env.client.get(f"{API}/search", params={"q": "x"}), 409, "model_mismatch")
    assert "--model" in err["message"]

    def bad(*a, **k):
        raise QueryError("unbalanced quote")

    monkeypatch.setattr(api_env.engine, "search", bad)
    assert_error(api_env.client.get(f"{API}/search", params={"q": "x"}), 400, "bad_query")


def test_app_builds_its_own_engine_from_settings(tmp_path):
    """The production path: create_app(settings) opens ONE engine in the lifespan and closes it."""
    settings = build_settings(tmp_path)
    write_pdf(settings.roots[0] / "solo.pdf", [["Okapi sighting report"]])
    with TestClient(create_app(settings)) as c:
        job = c.post(f"{API}/index-jobs", json={"path": "."}).json()
        assert wait_job(c, job["id"])["status"] == "done"
        assert c.get(f"{API}/search", params={"q": "Okapi"}).json()["hits"][0]["name"] == "solo.pdf"
        engine = c.app.state.api.engine
    assert engine._store is None  # closed with the app


def test_the_api_on_sqlite_and_postgresql(tmp_path, db_url, mini_encoder):
    """The same calls against both metadata databases (Docker compose runs PostgreSQL)."""
    settings = build_settings(tmp_path, database_url=db_url)
    root = make_docs(settings.roots[0])
    engine = Engine(settings, encoder=mini_encoder)
    with TestClient(create_app(settings, engine=engine)) as c:
        job = c.post(f"{API}/index-jobs", json={"path": str(root)}).json()
        assert wait_job(c, job["id"])["status"] == "done"
        hit = c.get(f"{API}/search", params={"q": "INV-2023-0042"}).json()["hits"][0]
        assert (hit["name"], hit["page"]) == ("invoice.pdf", 1)
        assert c.get(f"{API}/documents").json()["total"] == len(DOCS)
        assert c.get(hit["thumbnail_url"]).status_code == 200
        up = c.post(
            f"{API}/documents",
            params={"wait": "true"},
            files={"file": ("pg.pdf", pdf_bytes([["Narwhal sightings log", "North Atlantic"]]))},
        )
        assert up.status_code == 201 and c.get(f"{API}/search", params={"q": "Narwhal"}).json()["hits"]
        assert c.delete(f"{API}/documents/{hit['doc_id']}").status_code == 200
        assert c.get(f"{API}/documents").json()["total"] == len(DOCS)  # -1 deleted, +1 uploaded
        assert c.get("/healthz").json()["status"] == "ok"
    engine.close()


def test_api_docs_are_served_without_a_cdn(api_env):
    """Swagger UI at /docs loads its script and styles from this server (works on an offline machine)."""
    html = api_env.client.get("/docs").text
    assert "/docs-static/swagger-ui-bundle.js" in html and "/openapi.json" in html
    assert "cdn." not in html and "https://" not in html
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        r = api_env.client.get(f"/docs-static/{asset}")
        assert r.status_code == 200 and len(r.content) > 10_000, asset

"""The API over a folder with a file name that is not UTF-8, and job records that could not be served.

The index job must end `done`, the job list must answer 200 (also after a restart: the jobs are
persisted), the file is listed with its name escaped and its pages are served; a job record that does
not validate (written by a damaged or older jobs.json, or a report that does not fit the schema) is
listed as a failed job that says why, never a 500.
"""

from __future__ import annotations

import json
import os

from fastapi.testclient import TestClient

from tests.api_fixtures import build_settings, wait_job
from tests.builders import write_pdf
from tokensearch.api.app import create_app
from tokensearch.engine import Engine

API = "/api/v1"
CAFE = os.fsdecode(b"caf\xe9")  # 'caf\udce9'


def test_a_folder_with_a_name_that_is_not_utf8_is_indexed_listed_and_served_also_after_a_restart(
    tmp_path, mini_encoder
):
    settings = build_settings(tmp_path)
    folder = settings.roots[0] / "odd"
    write_pdf(folder / "named-later.pdf", [["Espresso tasting notes", "Roast profile 7"]])
    (folder / "named-later.pdf").rename(folder / f"{CAFE}.pdf")  # PyMuPDF saves only under UTF-8 names
    (folder / os.fsdecode(b"bad\xff.pdf")).write_bytes(b"not a pdf")
    engine = Engine(settings, encoder=mini_encoder)
    with TestClient(create_app(settings, engine=engine)) as c:
        job = c.post(f"{API}/index-jobs", json={"path": "odd"}).json()
        done = wait_job(c, job["id"])
        assert done["status"] == "done" and done["error"] is None, done
        assert done["report"]["failed"] == [[f"{folder.resolve()}/bad\\xff.pdf", done["report"]["failed"][0][1]]]
        listed = c.get(f"{API}/index-jobs")
        assert listed.status_code == 200 and listed.json()["items"][0]["id"] == job["id"]
        docs = c.get(f"{API}/documents").json()["items"]
        ok = next(d for d in docs if d["status"] == "ok")
        assert ok["name"] == "caf\\xe9.pdf" and ok["path"].endswith("/odd/caf\\xe9.pdf")
        failed = next(d for d in docs if d["status"] == "failed")
        assert failed["name"] == "bad\\xff.pdf" and "not a PDF" in failed["failure"]
        hit = c.get(f"{API}/search", params={"q": "Espresso"}).json()["hits"][0]
        assert hit["name"] == "caf\\xe9.pdf" and hit["doc_id"] == ok["id"]
        page = c.get(f"{API}/pages/{ok['id']}/1/image", params={"format": "png"})
        assert page.status_code == 200 and page.headers["content-type"] == "image/png"
    with TestClient(create_app(settings, engine=engine)) as c:  # a restart reads the persisted jobs back
        again = c.get(f"{API}/index-jobs/{job['id']}")
        assert again.status_code == 200 and again.json()["status"] == "done"
        assert c.get(f"{API}/index-jobs").status_code == 200
    engine.close()


def test_invalid_stored_job_records_are_listed_as_failed_jobs_not_500(tmp_path, mini_encoder):
    settings = build_settings(tmp_path)
    state = settings.home / "api" / "jobs.json"
    state.parent.mkdir(parents=True)
    now = "2026-01-01T00:00:00+00:00"
    root = str(settings.roots[0])
    jobs = [
        {"id": "good", "kind": "folder", "path": root, "status": "done", "created_at": now},
        # what the previous version persisted for a folder with a Latin-1 name (a lone surrogate)
        {
            "id": "latin1",
            "kind": "folder",
            "path": root,
            "status": "failed",
            "created_at": now,
            "report": {"failed": [[f"{root}/{CAFE}.png", "x"]]},
        },
        {"id": "status", "kind": "folder", "path": root, "status": "exploded", "created_at": now},
        {
            "id": "report",
            "kind": "folder",
            "path": root,
            "status": "done",
            "created_at": now,
            "report": {"files_seen": "many"},
        },
        {"id": "progress", "kind": "folder", "path": root, "status": "done", "created_at": now, "progress": [1]},
        {"id": "nokind", "path": root, "status": "done", "created_at": "yesterday"},
        ["not", "a", "record"],
    ]
    state.write_text(json.dumps({"version": 1, "jobs": jobs}))
    engine = Engine(settings, encoder=mini_encoder)
    with TestClient(create_app(settings, engine=engine)) as c:
        listed = c.get(f"{API}/index-jobs")
        assert listed.status_code == 200, listed.text
        items = {j["id"]: j for j in listed.json()["items"]}
        assert set(items) >= {j["id"] for j in jobs[:-1]} and len(items) == len(jobs)
        assert items["good"]["status"] == "done" and items["good"]["error"] is None
        for job_id in ("latin1", "status", "report", "progress", "nokind"):
            one = c.get(f"{API}/index-jobs/{job_id}")
            assert one.status_code == 200, one.text
            assert one.json()["status"] == "failed" and "stored record is invalid" in one.json()["error"], one.json()
    engine.close()
    saved = {j["id"]: j for j in json.loads(state.read_text())["jobs"]}  # rewritten valid
    assert saved["status"]["status"] == "failed" and "stored record is invalid" in saved["status"]["error"]


def test_a_report_that_does_not_fit_the_schema_is_not_recorded_and_the_job_says_so(tmp_path, mini_encoder):
    """Job records are validated when written: a report the API could not serve is refused at the source."""
    settings = build_settings(tmp_path)
    write_pdf(settings.roots[0] / "a.pdf", [["Lighthouse keeper log"]])
    engine = Engine(settings, encoder=mini_encoder)
    real_index = engine.index

    def index_with_a_bad_report(root, progress=None, cancel=None):
        report = real_index(root, progress=progress, cancel=cancel)
        report.files_seen = "several"  # JobReport wants a count
        return report

    engine.index = index_with_a_bad_report
    with TestClient(create_app(settings, engine=engine)) as c:
        job = c.post(f"{API}/index-jobs", json={"path": "."}).json()
        done = wait_job(c, job["id"])
        assert done["status"] == "done" and done["report"] is None
        assert "could not be kept (report:" in done["error"]
        assert c.get(f"{API}/index-jobs").status_code == 200
        assert c.get(f"{API}/search", params={"q": "Lighthouse"}).json()["hits"]
    engine.close()

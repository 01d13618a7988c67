"""Fixtures and documents for the API, viewer and fuzz tests (no tests here).

Every test gets its own home, document folder and app; the documents are born-digital PDFs written by
tests/builders.py, which the engine indexes exactly from their text layer, so the true word boxes are
known (``tests.builders.word_boxes``: PyMuPDF's own word positions, normalised to the page). The
embedded model is loaded once per session (``mini_encoder`` from conftest.py).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.builders import write_pdf
from tokensearch.api.app import create_app
from tokensearch.engine import Engine
from tokensearch.geometry import iou  # noqa: F401  (re-exported for the API tests)
from tokensearch.settings import Settings

# (page text lines) per document; the words the tests look for are unique to one page
DOCS: dict[str, list[list[str]]] = {
    "invoice.pdf": [
        [
            "INVOICE INV-2023-0042",
            "Date: 11/12/2020",
            "Bill to: Harbour Logistics Ltd",
            "Container inspection 480.00",
            "Total due 1730.00",
        ],
        ["Terms and conditions", "Payment within thirty days", "Late fees apply after March"],
    ],
    "minutes.pdf": [
        [
            "Meeting minutes of the steering committee",
            "The committee reviewed the maintenance schedule",
            "and approved the replacement of the harbour crane.",
            "Next meeting in the blue conference room.",
        ],
    ],
    "letter.pdf": [
        ["Dear customer,", "your parcel with tracking code ZX-99812 was delivered", "Kind regards, Aurora Shipping"],
    ],
}


def make_docs(folder: Path) -> Path:
    for name, pages in DOCS.items():
        write_pdf(folder / name, pages)
    return folder


@dataclass
class ApiEnv:
    root: Path  # the configured root holding the documents
    home: Path
    settings: Settings
    engine: Engine
    client: TestClient

    def settings_with(self, **kw) -> Settings:
        return self.settings.model_copy(update=kw)


def build_settings(tmp_path: Path, **kw) -> Settings:
    root = tmp_path / "docs"
    root.mkdir(parents=True, exist_ok=True)
    base = dict(home=tmp_path / "home", roots=[root], database_url=None)
    base.update(kw)
    return Settings(**base)


@pytest.fixture
def api_env(tmp_path, mini_encoder) -> Iterator[ApiEnv]:
    """Generated PDFs indexed into a fresh home, and a TestClient on an app sharing that engine."""
    settings = build_settings(tmp_path)
    root = make_docs(settings.roots[0])
    engine = Engine(settings, encoder=mini_encoder)
    report = engine.index(root)
    assert not report.failed, report.failed
    app = create_app(settings, engine=engine)
    with TestClient(app) as client:
        yield ApiEnv(root=root, home=settings.home, settings=settings, engine=engine, client=client)
    engine.close()


def wait_job(client: TestClient, job_id: str, timeout: float = 60.0, headers: dict | None = None) -> dict:
    t0 = time.monotonic()
    while True:
        job = client.get(f"/api/v1/index-jobs/{job_id}", headers=headers or {}).json()
        if job["status"] not in ("queued", "running"):
            return job
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"index job {job_id} still {job['status']} after {timeout}s: {job}")
        time.sleep(0.05)


def assert_error(resp, status: int, code: str | None = None) -> dict:
    """The response has ``status`` and the one error shape (optionally with this code)."""
    assert resp.status_code == status, (resp.status_code, resp.text[:500])
    body = resp.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """uvicorn serving an app on a free loopback port in a background thread."""

    def __init__(self, app, port: int | None = None):
        import uvicorn

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        )
        self.thread = threading.Thread(target=self.server.run, name="live-uvicorn", daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        t0 = time.monotonic()
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() - t0 > 30:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(15)

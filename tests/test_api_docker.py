"""The Docker files: images that run the API safely, a compose file that ``docker compose config`` accepts.

No Docker engine is needed: the files are checked statically, and by the compose CLI when one is installed
(``docker compose`` v2, or ``docker-compose`` v1 from Debian's ``docker-compose`` package).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

# integration: the Docker files through docker compose
pytestmark = pytest.mark.integration

yaml = pytest.importorskip("yaml")

DOCKER = Path(__file__).resolve().parents[1] / "docker"


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _final_stage(dockerfile: Path) -> list[tuple[str, str]]:
    ins = _instructions(dockerfile)
    last_from = max(i for i, (w, _) in enumerate(ins) if w == "FROM")
    return ins[last_from:]


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.gpu"])
def test_images_run_as_a_non_root_user_with_a_healthcheck(name):
    final = _final_stage(DOCKER / name)
    users = [a for w, a in final if w == "USER"]
    assert users and users[-1] not in ("root", "0"), users
    health = [a for w, a in final if w == "HEALTHCHECK"]
    assert health and "/healthz" in health[0]
    env = " ".join(a for w, a in final if w == "ENV")
    assert "TOKENSEARCH_HOME=/data/index" in env and "TOKENSEARCH_HOST=0.0.0.0" in env
    assert [a for w, a in final if w == "CMD"] == ['["serve"]']
    assert [a for w, a in final if w == "ENTRYPOINT"] == ['["tokensearch"]']


def test_cpu_image_uses_the_pinned_cpu_torch_and_ships_the_model():
    text = (DOCKER / "Dockerfile").read_text()
    assert "python:3.11-slim" in text
    assert "--index-url https://download.pytorch.org/whl/cpu torch==2.13.0" in text
    assert "mini.safetensors" in text  # the build fails if the embedded weights are not installed


def test_gpu_image_uses_cuda_torch_and_faiss_gpu():
    text = (DOCKER / "Dockerfile.gpu").read_text()
    assert re.search(r"FROM \$\{CUDA_IMAGE\}", text) and "nvidia/cuda:" in text
    assert re.search(r"download\.pytorch\.org/whl/cu\d+ torch==2\.13\.0", text)
    assert "faiss-gpu" in text and "pip uninstall -y faiss-cpu" in text
    assert "TOKENSEARCH_DEVICE=cuda" in text


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.gpu"])
def test_build_context_is_limited_to_the_package(name):
    lines = (DOCKER / f"{name}.dockerignore").read_text().splitlines()
    ignore = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert ignore[0] == "*" and "!tokensearch/" in ignore and "!pyproject.toml" in ignore


def test_compose_file_has_api_postgres_and_volumes():
    spec = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    api, db = spec["services"]["api"], spec["services"]["db"]
    assert api["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}
    env = api["environment"]
    db_url = env["TOKENSEARCH_DATABASE_URL"]
    assert db_url.startswith("postgresql+psycopg://") and "@db:5432/" in db_url
    assert "TOKENSEARCH_API_KEY" in env  # required by the server on 0.0.0.0
    assert any(v.startswith("index:/data/index") for v in api["volumes"])
    assert any(v.endswith(":/data/documents:ro") for v in api["volumes"])
    assert all(p.startswith("127.0.0.1:") for p in api["ports"])  # published on the host's loopback only
    assert api["depends_on"]["db"]["condition"] == "service_healthy"
    assert db["image"].startswith("postgres:") and "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert "ports" not in db
    assert set(spec["volumes"]) == {"index", "pgdata"}
    gpu = spec["services"]["api-gpu"]
    assert gpu["profiles"] == ["gpu"] and gpu["build"]["dockerfile"] == "docker/Dockerfile.gpu"
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]


def _compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_compose_config_passes():
    cli = _compose_cli()
    if cli is None:
        pytest.skip("no compose CLI (docker compose / docker-compose) installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOKENSEARCH_", "POSTGRES_"))}
    for extra in ([], ["--profile", "gpu"]):
        r = subprocess.run(
            [*cli, "-f", str(DOCKER / "compose.yaml"), *extra, "config"],
            capture_output=True,
            text=True,
            env=env,
            cwd=DOCKER.parent,
        )
        assert r.returncode == 0, r.stderr
        assert "tokensearch" in r.stdout

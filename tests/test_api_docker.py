"""The Docker files, checked by what they do, without a Docker engine (helpers: tests/docker_files.py).

docker/compose.yaml is resolved by the compose CLI (``docker compose`` v2, or ``docker-compose`` v1 from
Debian's ``docker-compose`` package) in a user's environment, and each API service is read as the
container reads it: the image's ENV under the service's environment, through the product's Settings, and
the image's ENTRYPOINT + CMD through the CLI's parser. The Dockerfiles are parsed, and what they run is
run here where it can be: the HEALTHCHECK against a live server, the CPU build's check for the model
weights against this install, the GPU build's faiss check against the CPU faiss of this machine. The
.dockerignore files are applied, with Docker's matching rules, to this checkout.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from sqlalchemy import make_url

from tests.api_fixtures import LiveServer, build_settings, free_port
from tests.docker_files import (
    DOCKER,
    ROOT,
    Service,
    Stage,
    checkout_files,
    compose_config,
    container_env,
    container_settings,
    dockerignore,
    parse_dockerfile,
    pip_installs,
    settings_fields,
    substitute,
)
from tokensearch.api.app import create_app
from tokensearch.api.security import InsecureConfigError, check_startup
from tokensearch.api.serve import serve_settings
from tokensearch.cli import build_parser, settings_from_args
from tokensearch.engine import Engine

# integration: the compose CLI and python in subprocesses, a live server
pytestmark = pytest.mark.integration

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
IMAGES = ["Dockerfile", "Dockerfile.gpu"]

# what a user exports before `docker compose up` (docker/compose.yaml's header)
USER_ENV = {
    "TOKENSEARCH_API_KEY": "k3y-from-the-shell",
    "TOKENSEARCH_DOCUMENTS": "/srv/scans",
    "TOKENSEARCH_PORT": "9123",
    "TOKENSEARCH_WATCH": "/data/documents",
    "POSTGRES_PASSWORD": "pg-s3cret",
}


def final_stage(name: str) -> Stage:
    return parse_dockerfile(DOCKER / name)[1][-1]


def build_stage(name: str) -> Stage:
    return parse_dockerfile(DOCKER / name)[1][0]


def container_start(svc: Service | None, image: Stage, extra_env: dict[str, str] | None = None):
    """What the container's process starts with, as a service of the compose file or with ``docker run``
    (``svc`` None, ``-e`` variables in ``extra_env``): (its parsed command line, its settings)."""
    env = {**image.env(), **(svc.environment if svc else {}), **(extra_env or {})}  # over the image's ENV
    entry = image.all("ENTRYPOINT")[-1].exec_form
    argv = (svc.raw.get("command") if svc else None) or image.all("CMD")[-1].exec_form
    assert entry == ["tokensearch"] and PYPROJECT["project"]["scripts"]["tokensearch"] == "tokensearch.cli:main"
    with container_env(env):
        args = build_parser(argv[0]).parse_args(argv)
        settings = settings_from_args(args)
        if args.command == "serve":
            settings = serve_settings(args, settings)
    return args, settings


@pytest.fixture(scope="module")
def compose():
    """docker/compose.yaml in the user's environment, and with nothing set (its defaults)."""
    return compose_config(DOCKER / "compose.yaml", USER_ENV, ("gpu",)), compose_config(
        DOCKER / "compose.yaml", {}, ("gpu",)
    )


@pytest.mark.parametrize("name,image", [("api", "Dockerfile"), ("api-gpu", "Dockerfile.gpu")])
def test_compose_api_services_serve_the_users_documents_on_the_hosts_loopback(compose, name, image):
    configured, _ = compose
    svc = configured.services[name]
    assert svc.dockerfile == DOCKER / image and svc.dockerfile.is_file()
    args, s = container_start(svc, final_stage(image))
    assert args.command == "serve"
    check_startup(s)  # listening on 0.0.0.0 in the container, with the user's API key: allowed
    assert s.api_key == USER_ENV["TOKENSEARCH_API_KEY"] and s.host == "0.0.0.0"
    # the container's port is published on the host's loopback only, at the port the user chose
    assert svc.ports == {("127.0.0.1", USER_ENV["TOKENSEARCH_PORT"], s.port, "tcp")}
    # the index home on the named volume, the documents read-only from the user's folder, which is a root
    assert svc.mounts[str(s.home)] == ("volume", "index", False) and "index" in configured.volumes
    assert svc.mounts["/data/documents"] == ("bind", USER_ENV["TOKENSEARCH_DOCUMENTS"], True)
    assert [str(r) for r in s.roots] == ["/data/documents"]
    assert [str(w) for w in s.watch] == ["/data/documents"]
    assert s.device == ("cuda" if name == "api-gpu" else "cpu")
    assert set(svc.environment) <= settings_fields(), set(svc.environment) - settings_fields()


def test_compose_api_reaches_the_db_service_with_its_credentials(compose):
    for spec, password in zip(compose, (USER_ENV["POSTGRES_PASSWORD"], "tokensearch")):
        db = spec.services["db"]
        db_env = db.environment
        assert db_env["POSTGRES_PASSWORD"] == password
        for name in ("api", "api-gpu"):
            svc = spec.services[name]
            url = make_url(container_start(svc, final_stage(svc.dockerfile.name))[1].database_url)
            assert url.drivername == "postgresql+psycopg" and (url.host, url.port) == ("db", 5432)
            assert (url.username, url.password, url.database) == (
                db_env["POSTGRES_USER"],
                db_env["POSTGRES_PASSWORD"],
                db_env["POSTGRES_DB"],
            )
            # it starts once the database answers: the condition needs the db's healthcheck, which asks
            # for that user and database
            assert svc.depends_on == {"db": "service_healthy"}
        test = db.raw["healthcheck"]["test"]
        assert test[0] == "CMD-SHELL" and test[1].split() == [
            "pg_isready",
            "-U",
            db_env["POSTGRES_USER"],
            "-d",
            db_env["POSTGRES_DB"],
        ]
        assert not db.ports  # the database is reachable inside the compose network only
        assert db.mounts["/var/lib/postgresql/data"] == ("volume", "pgdata", False)
        assert db.raw["image"].startswith("postgres:")
        assert spec.volumes == {"index", "pgdata"}


def test_compose_defaults_refuse_to_serve_without_an_api_key(compose):
    _, defaults = compose
    api = defaults.services["api"]
    assert api.ports == {("127.0.0.1", "8000", 8000, "tcp")}
    # ../documents next to docker/: the repository's documents folder
    assert api.mounts["/data/documents"] == ("bind", str(ROOT / "documents"), True)
    _, s = container_start(api, final_stage("Dockerfile"))
    assert s.watch == [] and not s.api_key
    with pytest.raises(InsecureConfigError, match="without an API key"):
        check_startup(s)


def test_compose_gpu_service_is_behind_its_profile_and_reserves_the_gpus(compose):
    configured, _ = compose
    gpu, api = configured.services["api-gpu"], configured.services["api"]
    assert gpu.raw["profiles"] == ["gpu"] and "profiles" not in api.raw
    assert gpu.raw["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    # the same environment as the CPU service (one YAML anchor), plus the device
    assert gpu.environment == {**api.environment, "TOKENSEARCH_DEVICE": "cuda"}


@pytest.mark.parametrize("name", IMAGES)
def test_images_serve_on_every_interface_so_only_with_an_api_key(name):
    final = final_stage(name)
    args, s = container_start(None, final)  # docker run without -e
    assert args.command == "serve" and s.host == "0.0.0.0"
    with pytest.raises(InsecureConfigError, match="without an API key"):
        check_startup(s)
    _, s = container_start(None, final, {"TOKENSEARCH_API_KEY": "change-me"})
    check_startup(s)
    assert [str(r) for r in s.roots] == ["/data/documents"] and s.device == ("cuda" if "gpu" in name else "cpu")


@pytest.mark.parametrize("name", IMAGES)
def test_images_run_the_server_as_an_unprivileged_user_owning_the_index(name):
    final = final_stage(name)
    user = final.all("USER")[-1].args
    created = [c for c in final.commands() if c[0] == "useradd"]
    assert len(created) == 1 and created[0][-1] == user  # made in this stage, so it exists in the image
    uid = created[0][created[0].index("--uid") + 1]
    assert user not in ("root", "0") and int(uid) != 0
    s = container_settings(final.env())
    # the index home may be written by that user, and is a volume
    owned = [Path(c[-1]) for c in final.commands() if c[:2] == ["chown", "-R"] and c[2].split(":")[0] == user]
    assert any(s.home.is_relative_to(d) for d in owned), owned
    assert str(s.home) in final.all("VOLUME")[-1].exec_form
    assert final.all("EXPOSE")[-1].args.split() == [str(s.port)]


@pytest.mark.parametrize("name", IMAGES)
def test_image_healthcheck_asks_the_servers_healthz(name, tmp_path, mini_encoder):
    check = final_stage(name).all("HEALTHCHECK")[-1]
    assert check.args.startswith("CMD ")
    python, flag, code = json.loads(check.args[4:])
    assert (python, flag) == ("python", "-c")  # the venv's python on the image's PATH

    def probe(port: int) -> int:
        env = {"PATH": "/usr/bin:/bin", "TOKENSEARCH_PORT": str(port)}
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=30).returncode

    settings = build_settings(tmp_path)
    with Engine(settings, encoder=mini_encoder) as engine, LiveServer(create_app(settings, engine=engine)) as srv:
        assert probe(srv.port) == 0
    assert probe(free_port()) != 0  # nothing answers: unhealthy


def test_cpu_image_installs_the_pinned_cpu_torch_on_a_supported_python():
    global_args, (build, final) = parse_dockerfile(DOCKER / "Dockerfile")
    assert build.base == final.base == global_args["PYTHON_IMAGE"]  # one base image, a build argument
    assert build.base.startswith("python:")
    python = Version(build.base.split(":")[1].split("-")[0])  # python:3.11-slim
    assert python in SpecifierSet(PYPROJECT["project"]["requires-python"])
    (torch, opts), *_ = pip_installs(build.commands())
    assert opts["--index-url"] == "https://download.pytorch.org/whl/cpu"
    _check_torch_pin(torch)


def test_gpu_image_installs_a_torch_for_its_cuda_and_faiss_gpu_in_place_of_faiss_cpu():
    global_args, (build, final) = parse_dockerfile(DOCKER / "Dockerfile.gpu")
    assert build.base == final.base == global_args["CUDA_IMAGE"]  # one base image, a build argument
    assert build.base.startswith("nvidia/cuda:")
    cuda = build.base.split(":")[1].split("-")[0]  # nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
    (torch, opts), *_ = pip_installs(build.commands())
    assert opts["--index-url"] == "https://download.pytorch.org/whl/cu" + "".join(cuda.split(".")[:2])
    _check_torch_pin(torch)
    # the package (which pulls faiss-cpu), then faiss-cpu out, then the GPU build in (both are `faiss`)
    cmds = build.commands()
    order = [cmds.index(c) for c in (["pip", "install", "."], ["pip", "uninstall", "-y", "faiss-cpu"])]
    gpu = [i for i, c in enumerate(cmds) if c[:2] == ["pip", "install"] and c[-1].startswith("faiss-gpu")]
    assert len(gpu) == 1 and order[0] < order[1] < gpu[0]
    # and the build's own check refuses a CPU-only faiss (the one installed here)
    (check,) = [c for c in cmds[gpu[0] :] if c[:2] == ["python", "-c"]]
    r = subprocess.run([sys.executable, "-c", check[2]], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "faiss without GPU support" in r.stderr


def _check_torch_pin(reqs: list[str]) -> None:
    (pin,) = [Requirement(r) for r in reqs]
    assert pin.name == "torch"
    (version,) = [Version(s.version) for s in pin.specifier]
    declared = next(Requirement(d) for d in PYPROJECT["project"]["dependencies"] if d.startswith("torch"))
    assert version in declared.specifier
    ci = (ROOT / "requirements" / "ci-constraints.txt").read_text().splitlines()
    (ci_torch,) = [Version(line.split("==")[1]) for line in ci if line.startswith("torch==")]
    assert ci_torch.public == str(version)  # the version the tests run (CI installs its +cpu build)


def test_cpu_image_build_checks_the_model_weights_this_package_installs(tmp_path):
    build = build_stage("Dockerfile")
    cmds = build.commands()
    install = [i for i, c in enumerate(cmds) if c[:2] == ["pip", "install"] and c[2].startswith(".")]
    (check,) = [c for c in cmds[install[0] :] if c[:2] == ["python", "-c"]]
    r = subprocess.run([sys.executable, "-c", check[2]], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    # optional extras arrive as a build argument (docker/compose.cluster.yaml: EXTRAS="[milvus]")
    (spec,) = [cmds[i][2] for i in install]
    assert substitute(spec, build.arg_defaults()) == "."
    assert substitute(spec, {**build.arg_defaults(), "EXTRAS": "[milvus]"}) == ".[milvus]"


@pytest.mark.parametrize("name", IMAGES)
def test_build_context_is_the_package_and_its_metadata_only(name):
    sent = dockerignore(DOCKER / f"{name}.dockerignore")
    files = checkout_files()
    wanted = {"pyproject.toml", PYPROJECT["project"]["readme"]} | {f for f in files if f.startswith("tokensearch/")}
    assert {f for f in files if sent(f)} == wanted
    for junk in ("tokensearch/__pycache__/cli.cpython-311.pyc", "tokensearch/api/x.pyc", ".git/HEAD", "shared/a.pdf"):
        assert not sent(junk), junk
    # everything the build stage copies is in the context
    for copy in build_stage(name).all("COPY"):
        assert "from" not in copy.flags
        *sources, _ = copy.args.split()
        for src in sources:
            assert src in wanted or any(f.startswith(src.rstrip("/") + "/") for f in wanted), src

"""docker/compose.cluster.yaml (docs/scale.md): the API and indexers on PostgreSQL + Milvus, resolved by the
compose CLI as Docker would (no Docker engine needed; helpers: tests/docker_files.py). Each tokensearch
service is read as its container reads it: the image's ENV under the service's environment, through the
product's Settings, and its command through the CLI's parser."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from sqlalchemy import make_url

from tests.docker_files import (
    DOCKER,
    Compose,
    Service,
    compose_config,
    container_env,
    parse_dockerfile,
    settings_fields,
    substitute,
)
from tokensearch.cli import build_parser, settings_from_args

# integration: the compose CLI in a subprocess
pytestmark = pytest.mark.integration

USER_ENV = {
    "TOKENSEARCH_API_KEY": "cluster-k3y",
    "TOKENSEARCH_DOCUMENTS": "/srv/archive",
    "POSTGRES_PASSWORD": "pg-s3cret",
    "MINIO_ACCESS_KEY": "minio-user",
    "MINIO_SECRET_KEY": "minio-s3cret",
    "TOKENSEARCH_MILVUS_INDEX": "HNSW",
}
TOKENSEARCH = ("api", "indexer")
INSIDE_ONLY = ("db", "milvus", "etcd", "minio")


@pytest.fixture(scope="module")
def cluster() -> Compose:
    return compose_config(DOCKER / "compose.cluster.yaml", USER_ENV, ("index",))


def start(svc: Service, argv: list[str] | None = None):
    """(parsed command line, settings) of the container: the image built with the service's build args."""
    _, stages = parse_dockerfile(svc.dockerfile)
    image = stages[-1]
    argv = argv or svc.raw.get("command") or image.all("CMD")[-1].exec_form
    with container_env({**image.env(), **svc.environment}):
        args = build_parser(argv[0]).parse_args(argv)
        return args, settings_from_args(args)


@pytest.mark.parametrize("name", TOKENSEARCH)
def test_api_and_indexers_share_one_index_on_postgres_and_milvus(cluster, name):
    svc = cluster.services[name]
    folder = "/data/documents/a"  # `run --rm indexer index /data/documents/a` (the file's header)
    args, s = start(svc, ["index", folder] if name == "indexer" else None)
    assert args.command == ("index" if name == "indexer" else "serve")
    assert set(svc.environment) <= settings_fields(), set(svc.environment) - settings_fields()
    assert s.vector_backend == "milvus" and s.milvus_index == USER_ENV["TOKENSEARCH_MILVUS_INDEX"]
    milvus = urlsplit(s.milvus_uri)
    assert milvus.hostname in cluster.services and milvus.hostname == "milvus" and milvus.port == 19530
    url = make_url(s.database_url)
    db = cluster.services[url.host].environment
    assert url.drivername == "postgresql+psycopg" and url.port == 5432
    login = (db["POSTGRES_USER"], db["POSTGRES_PASSWORD"], db["POSTGRES_DB"])
    assert (url.username, url.password, url.database) == login
    assert url.password == USER_ENV["POSTGRES_PASSWORD"]
    # one home for every worker: the named volume holding the feature store
    assert svc.mounts[str(s.home)] == ("volume", "index", False)
    assert svc.mounts["/data/documents"] == ("bind", USER_ENV["TOKENSEARCH_DOCUMENTS"], True)
    assert any(folder.startswith(str(r)) for r in s.roots)
    # they start once PostgreSQL and Milvus answer: service_healthy needs a healthcheck on each
    assert svc.depends_on == {"db": "service_healthy", "milvus": "service_healthy"}
    assert all("healthcheck" in cluster.services[d].raw for d in svc.depends_on)


def test_the_images_are_built_with_the_milvus_extra(cluster):
    for name in TOKENSEARCH:
        svc = cluster.services[name]
        assert svc.build_args == {"EXTRAS": "[milvus]"} and svc.dockerfile == DOCKER / "Dockerfile"
        _, (build, _) = parse_dockerfile(svc.dockerfile)
        (spec,) = [c[2] for c in build.commands() if c[:2] == ["pip", "install"] and c[2].startswith(".")]
        assert substitute(spec, {**build.arg_defaults(), **svc.build_args}) == ".[milvus]"
    assert cluster.services["api"].raw["image"] == cluster.services["indexer"].raw["image"]


def test_only_the_api_is_published_on_the_hosts_loopback_and_indexers_run_on_demand(cluster):
    api = cluster.services["api"]
    _, s = start(api)
    assert api.ports == {("127.0.0.1", "8000", s.port, "tcp")} and s.api_key == USER_ENV["TOKENSEARCH_API_KEY"]
    assert not any(cluster.services[n].ports for n in INSIDE_ONLY)  # reachable inside only
    indexer = cluster.services["indexer"]
    assert indexer.raw["profiles"] == ["index"] and "profiles" not in api.raw
    with pytest.raises(SystemExit) as e:  # its default command: the index command's help
        start(indexer)
    assert e.value.code == 0


def test_milvus_finds_its_etcd_and_minio_with_the_users_keys(cluster):
    milvus, etcd, minio = (cluster.services[n] for n in ("milvus", "etcd", "minio"))
    assert milvus.raw["image"].startswith("milvusdb/milvus:v2.")
    env = milvus.environment
    advertised = [a.split("=", 1)[1] for a in etcd.raw["command"] if a.startswith("-advertise-client-urls=")]
    assert [urlsplit(u).netloc for u in advertised] == [env["ETCD_ENDPOINTS"]]
    host, port = env["MINIO_ADDRESS"].split(":")
    assert host in cluster.services and host == "minio" and port == "9000"
    assert (
        (env["MINIO_ACCESS_KEY_ID"], env["MINIO_SECRET_ACCESS_KEY"])
        == (
            minio.environment["MINIO_ACCESS_KEY"],
            minio.environment["MINIO_SECRET_KEY"],
        )
        == (USER_ENV["MINIO_ACCESS_KEY"], USER_ENV["MINIO_SECRET_KEY"])
    )
    assert set(milvus.depends_on) == {"etcd", "minio"}
    assert cluster.volumes == {"index", "pgdata", "milvus", "etcd", "minio"}

"""docker/compose.cluster.yaml (docs/scale.md): the API and indexers on PostgreSQL + Milvus, checked
statically (no Docker engine needed); every TOKENSEARCH_* variable it sets is a setting that exists."""

from __future__ import annotations

from pathlib import Path

import yaml

from tokensearch.settings import Settings

DOCKER = Path(__file__).resolve().parents[1] / "docker"


def test_cluster_compose_runs_api_and_indexers_on_postgres_and_milvus():
    spec = yaml.safe_load((DOCKER / "compose.cluster.yaml").read_text())
    services = spec["services"]
    for name in ("api", "indexer"):
        svc = services[name]
        env = svc["environment"]
        assert svc["build"]["args"]["EXTRAS"] == "[milvus]" and svc["build"]["dockerfile"] == "docker/Dockerfile"
        assert env["TOKENSEARCH_VECTOR_BACKEND"] == "milvus"
        assert env["TOKENSEARCH_MILVUS_URI"] == "http://milvus:19530"
        url = env["TOKENSEARCH_DATABASE_URL"]
        assert url.startswith("postgresql+psycopg://") and "@db:5432/" in url
        assert any(v.startswith("index:/data/index") for v in svc["volumes"])  # one home: the feature store
        assert {d: c["condition"] for d, c in svc["depends_on"].items()} == {
            "db": "service_healthy",
            "milvus": "service_healthy",
        }
        fields = {f"TOKENSEARCH_{f.upper()}" for f in Settings.model_fields}
        assert set(env) <= fields, set(env) - fields
    assert all(p.startswith("127.0.0.1:") for p in services["api"]["ports"])
    assert services["milvus"]["image"].startswith("milvusdb/milvus:v2.")
    assert services["milvus"]["environment"]["ETCD_ENDPOINTS"] == "etcd:2379"
    assert "ARG EXTRAS" in (DOCKER / "Dockerfile").read_text()
    assert not any("ports" in services[s] for s in ("db", "milvus", "etcd", "minio"))  # reachable inside only

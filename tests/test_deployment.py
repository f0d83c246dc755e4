"""The compose deployment is structurally sound (no Qdrant image is reachable here to run it)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

COMPOSE = Path(__file__).parents[1] / "deploy" / "docker-compose.yml"


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_three_qdrant_nodes_form_one_cluster_with_an_api_key():
    services = _compose()["services"]
    nodes = sorted(name for name in services if name.startswith("qdrant-"))
    assert nodes == ["qdrant-0", "qdrant-1", "qdrant-2"]
    for name in nodes:
        node = services[name]
        assert node["environment"]["QDRANT__CLUSTER__ENABLED"] == "true"
        assert "QDRANT_API_KEY:?" in node["environment"]["QDRANT__SERVICE__API_KEY"]
        assert "ports" not in node  # the cluster is not exposed outside the backend network
        command = " ".join(node["command"])
        assert f"--uri http://{name}:6335" in command
        if name != "qdrant-0":
            assert "--bootstrap http://qdrant-0:6335" in command


def test_evorag_services_use_the_cluster_with_replication_and_required_secrets():
    services = _compose()["services"]
    mcp, ui = services["evorag-mcp"], services["evorag-ui"]
    assert mcp["environment"]["EVORAG_QDRANT_URL"].startswith("http://qdrant-")
    assert mcp["environment"]["EVORAG_QDRANT_REPLICATION_FACTOR"] == "2"
    assert ":?" in mcp["environment"]["EVORAG_MCP_TOKEN"]  # compose refuses to start without a token
    for key in ("EVORAG_UI_USER", "EVORAG_UI_PASSWORD", "CHAINLIT_AUTH_SECRET"):
        assert ":?" in ui["environment"][key]
    assert ui["environment"]["EVORAG_QDRANT_URL"] == mcp["environment"]["EVORAG_QDRANT_URL"]
    for service in (mcp, ui):
        for port in service["ports"]:
            assert port.startswith("127.0.0.1:"), "published on loopback only"
    assert "/healthz" in " ".join(mcp["healthcheck"]["test"])
    assert mcp["command"][:3] == ["evorag", "mcp", "--http"]


def test_the_settings_named_in_the_compose_file_exist():
    from evorag.settings import Settings

    names = set()
    for service in _compose()["services"].values():
        names |= {k for k in service.get("environment", {}) if k.startswith("EVORAG_")}
    fields = {f"EVORAG_{name.upper()}" for name in Settings.model_fields}
    assert names - {"EVORAG_HOME"} <= fields, names - fields
    assert re.search(r"FROM python:3\.11", (COMPOSE.parent / "Dockerfile").read_text())

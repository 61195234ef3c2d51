"""Deployment files stay valid and safe: compose services, local-only ports, no secrets, broker settings."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
MOSQUITTO_CONF = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"
ACL = ROOT / "deploy" / "mosquitto" / "acl"
CI_RUN = ROOT / ".ci" / "run"
ENV_EXAMPLE = ROOT / ".env.example"

INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:[:?\-][^}]*)?\}")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|PASSWD", re.IGNORECASE)
URL_CREDENTIALS = re.compile(r"[a-z+]+://[^:/@\s]+:(\$\{[^}]*\}|[^@\s]+)@")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in _strings(k) + _strings(v)]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    return []


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def test_compose_has_the_services(compose: dict[str, Any]) -> None:
    assert {"mosquitto", "postgres", "store-server", "edge-sim"} <= set(compose["services"])


def test_every_port_binding_is_on_loopback(compose: dict[str, Any]) -> None:
    bindings = [(name, str(p)) for name, svc in compose["services"].items() for p in svc.get("ports") or []]
    assert bindings, "expected at least one published port"
    for name, port in bindings:
        assert port.startswith("127.0.0.1:"), f"{name} publishes {port!r} beyond loopback"


def test_no_literal_secrets(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        for key, value in _environment(svc).items():
            if SECRET_NAME.search(key):
                assert INTERPOLATION.fullmatch(value), f"{name}: {key} must come from ${{...}}, not a literal"
    urls = 0
    for text in _strings(compose):
        for password in URL_CREDENTIALS.findall(text):
            urls += 1
            assert INTERPOLATION.fullmatch(password), f"literal password in URL: {text!r}"
    assert urls >= 3, "expected the database, store-server and edge-sim URLs to carry credentials"


def test_required_secrets_fail_loudly_when_unset() -> None:
    text = COMPOSE.read_text()
    for var in ("POSTGRES_PASSWORD", "MQTT_STORE_SERVER_PASSWORD", "MQTT_EDGE_SIM_PASSWORD"):
        assert re.search(r"\$\{" + var + r":\?", text), f"{var} should use ${{{var}:?...}}"


def test_every_compose_variable_is_in_env_example() -> None:
    used = set(INTERPOLATION.findall(COMPOSE.read_text()))
    listed = {
        line.split("=", 1)[0].strip()
        for line in ENV_EXAMPLE.read_text().splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    }
    assert used <= listed, f"missing from .env.example: {sorted(used - listed)}"


def test_store_server_wiring(compose: dict[str, Any]) -> None:
    svc = compose["services"]["store-server"]
    env = _environment(svc)
    assert env["WALKOUT_DATABASE_URL"].startswith("postgresql+psycopg://walkout:")
    assert env["WALKOUT_DATABASE_URL"].endswith("@postgres:5432/walkout")
    assert env["WALKOUT_MQTT_URL"].startswith("mqtt://store-server:")
    assert env["WALKOUT_MQTT_URL"].endswith("@mosquitto:1883")
    assert env["WALKOUT_HTTP_HOST"] == "0.0.0.0"
    assert svc["command"] == ["walkout", "serve"]
    for dep in ("mosquitto", "postgres"):
        assert svc["depends_on"][dep]["condition"] == "service_healthy"
    assert svc["build"]["dockerfile"] == "Dockerfile"


def test_every_service_has_a_healthcheck_except_the_one_shot_simulator(compose: dict[str, Any]) -> None:
    for name in ("mosquitto", "postgres", "store-server"):
        assert compose["services"][name]["healthcheck"]["test"], name


def test_mosquitto_mounts_conf_acl_and_passwd(compose: dict[str, Any]) -> None:
    svc = compose["services"]["mosquitto"]
    assert svc["image"].startswith("eclipse-mosquitto:2")
    targets = {str(v).split(":")[1] for v in svc["volumes"]}
    assert {
        "/mosquitto/config/mosquitto.conf",
        "/mosquitto/config/acl",
        "/mosquitto/config/passwd",
    } <= targets
    assert "/mosquitto/data" in targets


def _conf(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            out.setdefault(key, value.strip())
    return out


def test_mosquitto_conf() -> None:
    conf = _conf(MOSQUITTO_CONF)
    assert conf["persistence"] == "true"
    assert conf["allow_anonymous"] == "false"
    assert conf["password_file"] == "/mosquitto/config/passwd"
    assert conf["acl_file"] == "/mosquitto/config/acl"
    assert conf["listener"].split()[0] == "1883"
    assert conf["persistence_location"] == "/mosquitto/data/"
    assert int(conf["max_queued_messages"]) >= 100_000


def test_acl_store_server_reads_all_and_nodes_write_only_their_own_topics() -> None:
    lines = [
        ln.strip() for ln in ACL.read_text().splitlines() if ln.strip() and not ln.strip().startswith("#")
    ]
    assert "pattern write walkout/+/%u/#" in lines
    block = lines[lines.index("user store-server") + 1 :]
    assert "topic read walkout/#" in block
    # Real nodes write only through the pattern; the one exception is the simulator, speaking for them all.
    writers: list[tuple[str, str]] = []
    user = ""
    for line in lines:
        if line.startswith("user "):
            user = line.split(None, 1)[1]
        elif line.startswith("topic") and ("write" in line.split() or "readwrite" in line.split()):
            writers.append((user, line))
    assert writers == [("edge-sim", "topic write walkout/#")]


def test_ci_run_starts_services_and_runs_make_test() -> None:
    text = CI_RUN.read_text()
    assert text.startswith("#!/usr/bin/env bash")
    assert "set -euo pipefail" in text
    assert re.search(r"^\s*make test\s*$", text, re.MULTILINE)
    assert "1883" in text and "5432" in text
    assert os.access(CI_RUN, os.X_OK)


def test_makefile_test_target_runs_every_tier() -> None:
    text = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^test: .*\n\t(.+)$", text, re.MULTILINE)
    assert recipe, "Makefile has no test target"
    assert (
        "pytest" in recipe.group(1) and " -m " not in recipe.group(1) and "tests/unit" not in recipe.group(1)
    )


def test_dockerfile_runs_as_non_root() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert text.startswith("# ") or text.startswith("FROM")
    assert "FROM python:3.11-slim" in text
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert 'CMD ["walkout", "serve"]' in text

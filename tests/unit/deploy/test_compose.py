"""deploy/compose.yaml and its CPU override, read the way `docker compose` reads them.

No Docker engine runs here, so the files are parsed and checked for what the
deployment depends on: services, persistence, the GPU reservation, health
checks, and environment variables that are real settings.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.unit.deploy.deploy_files import (
    COMPOSE,
    COMPOSE_CPU,
    COMPOSE_S3,
    DEPLOY,
    environment_of,
    load,
    merge,
    setting_names,
)

from stylebot.cli import main as stylebot_main


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load(COMPOSE)


@pytest.fixture(scope="module")
def compose_s3(compose: dict[str, Any]) -> dict[str, Any]:
    return merge(compose, load(COMPOSE_S3))


@pytest.fixture(scope="module")
def compose_cpu(compose: dict[str, Any]) -> dict[str, Any]:
    return merge(compose, load(COMPOSE_CPU))


def test_it_has_redis_a_front_end_and_a_worker_sharing_a_data_volume(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert set(services) == {"redis", "frontend", "worker"}
    for name in ("frontend", "worker"):
        service = services[name]
        assert "stylebot-data:/data" in service["volumes"], name
        assert environment_of(service)["STYLEBOT_DATA_DIR"] == "/data", name
        assert environment_of(service)["REDIS_URL"] == "redis://redis:6379/0", name
        assert service["env_file"] == ".env", name
        assert service["depends_on"]["redis"]["condition"] == "service_healthy", name
        assert service["restart"] == "unless-stopped", name
        assert service["stop_signal"] == "SIGTERM", name
        assert (DEPLOY.parent / service["build"]["dockerfile"]).is_file(), name
        assert service["build"]["context"] == ".."
    declared = set(compose["volumes"])
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"volume {source} is not declared"


def test_redis_persists_to_an_append_only_file_and_never_evicts(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    # No snapshots: a dump.rdb would keep erased data (only the AOF is rewritten).
    assert command[command.index("--save") + 1] == ""
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert "redis-data:/data" in redis["volumes"]
    assert "ping" in redis["healthcheck"]["test"]


def test_every_service_has_a_health_check_on_something_it_serves(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    for name, service in services.items():
        check = service["healthcheck"]
        assert check["test"][0] == "CMD", name
        assert check["retries"] >= 1, name
    for name in ("frontend", "worker"):
        port = environment_of(services[name])["STYLEBOT_METRICS_PORT"]
        assert f"127.0.0.1:{port}/metrics" in " ".join(services[name]["healthcheck"]["test"])


def test_the_worker_reserves_an_nvidia_gpu(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia"
    assert device["capabilities"] == ["gpu"]
    assert device["count"] == 1
    # Long enough for a job to end or checkpoint after SIGTERM.
    assert worker["stop_grace_period"] == "120s"
    assert "frontend" not in worker.get("depends_on", {})


def test_the_cpu_variant_drops_the_gpu_and_builds_without_cuda(
    compose_cpu: dict[str, Any],
) -> None:
    worker = compose_cpu["services"]["worker"]
    assert "deploy" not in worker
    args = worker["build"]["args"]
    assert "cuda" not in args["BASE_IMAGE"]
    assert args["TORCH_INDEX_URL"].endswith("/cpu")
    assert worker["build"]["dockerfile"] == "deploy/Dockerfile.worker"
    assert worker["environment"]["STYLEBOT_DEVICE"] == "cpu"
    # The rest of the stack is untouched.
    assert set(compose_cpu["services"]) == {"redis", "frontend", "worker"}


def test_every_environment_variable_set_is_a_setting(
    compose: dict[str, Any], compose_cpu: dict[str, Any], compose_s3: dict[str, Any]
) -> None:
    known = setting_names()
    for variant in (compose, compose_cpu, compose_s3):
        for name, service in variant["services"].items():
            if name == "redis":
                continue
            unknown = set(environment_of(service)) - known
            assert not unknown, f"{name} sets {unknown}, which stylebot does not read"


@pytest.mark.parametrize("service", ["frontend", "worker"])
def test_the_commands_are_stylebot_subcommands(
    compose: dict[str, Any], service: str, capsys: pytest.CaptureFixture[str]
) -> None:
    program, *arguments = compose["services"][service]["command"]
    assert program == "stylebot"
    with pytest.raises(SystemExit) as exit_info:
        stylebot_main([*arguments, "--help"])
    assert exit_info.value.code == 0
    assert "usage: stylebot" in capsys.readouterr().out


def test_the_s3_variant_puts_every_process_on_one_local_object_store(
    compose_s3: dict[str, Any],
) -> None:
    services = compose_s3["services"]
    store = services["s3"]
    assert "-s3" in store["command"]
    assert "s3-data" in compose_s3["volumes"]
    config_mount = next(v for v in store["volumes"] if v.endswith(":/etc/seaweedfs/s3.json:ro"))
    # The operator copies the example; the example is what the server would read.
    example = DEPLOY / (config_mount.split(":", 1)[0].removeprefix("./") + ".example")
    [identity] = json.loads(example.read_text())["identities"]
    assert {"Read", "Write", "List"} <= set(identity["actions"])
    port = next(flag for flag in store["command"] if flag.startswith("-s3.port=")).split("=")[1]
    for name in ("frontend", "worker"):
        environment = environment_of(services[name])
        assert environment["STYLEBOT_BLOB_URL"] == "s3://stylebot/blobs", name
        assert environment["STYLEBOT_S3_ENDPOINT_URL"] == f"http://s3:{port}", name
        assert environment["STYLEBOT_S3_ADDRESSING_STYLE"] == "path", name
        # Merged, not replaced: the base file's settings are still there.
        assert environment["REDIS_URL"] == "redis://redis:6379/0", name
        assert services[name]["depends_on"]["s3"]["condition"] == "service_healthy", name
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy", name

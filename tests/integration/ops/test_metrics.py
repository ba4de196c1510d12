"""The Prometheus endpoint on 127.0.0.1, scraped over HTTP, on the real queue."""

from __future__ import annotations

import asyncio
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.support.processes import free_port
from tests.support.small_disk import fill, mounted_tmpfs

from stylebot.bootstrap import FrontEnd
from stylebot.config import load_settings
from stylebot.metrics import MetricsServer, observed_job, start_metrics_server
from stylebot.queue.payloads import GenerateJob
from stylebot.startup_checks import StartupError

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def generate_job(job_id: str) -> GenerateJob:
    return GenerateJob(
        job_id=job_id,
        prompt="a lighthouse",
        negative_prompt="",
        seed=1,
        steps=4,
        guidance=7.5,
        width=256,
        height=256,
        output_ids=("0123456789ab",),
    )


@pytest.fixture
def metrics(frontend: FrontEnd) -> Iterator[MetricsServer]:
    # metrics_port is not a Settings field yet: an override lands in Settings.extra.
    settings = load_settings(
        environ={}, data_dir=frontend.settings.data_dir, metrics_port=free_port()
    )
    server = start_metrics_server(settings, frontend.redis_url, role="frontend")
    assert server is not None
    yield server
    server.stop()


def test_metrics_are_off_without_a_port(frontend: FrontEnd) -> None:
    settings = load_settings(environ={}, data_dir=frontend.settings.data_dir)
    assert start_metrics_server(settings, frontend.redis_url, role="frontend") is None


async def test_queue_depth_per_kind_is_read_from_redis_at_each_scrape(
    frontend: FrontEnd, metrics: MetricsServer
) -> None:
    assert metrics.host == "127.0.0.1"
    before = await asyncio.to_thread(scrape, metrics.url)
    assert before[("stylebot_redis_up", ())] == 1
    assert before[("stylebot_queue_depth", (("kind", "generate"),))] == 0
    assert before[("stylebot_role", (("role", "frontend"),))] == 1

    # No worker runs in this test, so the jobs stay queued.
    await frontend.queue.enqueue_generate(generate_job("metrics-1"))
    await frontend.queue.enqueue_generate(generate_job("metrics-2"))
    after = await asyncio.to_thread(scrape, metrics.url)
    assert after[("stylebot_queue_depth", (("kind", "generate"),))] == 2
    assert after[("stylebot_queue_depth", (("kind", "train"),))] == 0
    assert after[("stylebot_jobs_running", (("kind", "generate"),))] == 0
    assert after[("stylebot_workers", ())] == 0
    # A CPU-only process exports no GPU memory rather than zeros.
    assert not any(name.startswith("stylebot_gpu_") for name, _ in after)
    assert ("process_resident_memory_bytes", ()) in after


async def test_job_durations_outcomes_and_failures_are_counted(metrics: MetricsServer) -> None:
    async def finishes(ctx: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0.05)
        return {"seconds": 0.05}

    async def is_cancelled(ctx: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
        return {"cancelled": True}

    async def fails(ctx: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("out of luck")

    class Generator:
        loaded_adapters = ("style-a", "style-b")

    class Engine:
        generator = Generator()

    before = await asyncio.to_thread(scrape, metrics.url)
    wrapped = observed_job(finishes, "generate", engine=Engine)
    assert wrapped.__name__ == "finishes"  # arq names jobs after the function
    await wrapped({}, {"job_id": "j1"})
    await observed_job(is_cancelled, "train")({}, {"job_id": "j2"})
    with pytest.raises(RuntimeError):
        await observed_job(fails, "train")({}, {"job_id": "j3"})
    after = await asyncio.to_thread(scrape, metrics.url)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after[key] - before.get(key, 0.0)

    assert grew("stylebot_jobs_total", kind="generate", outcome="finished") == 1
    assert grew("stylebot_jobs_total", kind="train", outcome="cancelled") == 1
    assert grew("stylebot_jobs_total", kind="train", outcome="failed") == 1
    assert grew("stylebot_job_failures_total", kind="train") == 1
    assert grew("stylebot_job_failures_total", kind="generate") == 0
    assert grew("stylebot_job_duration_seconds_count", kind="generate", outcome="finished") == 1
    assert grew("stylebot_job_duration_seconds_sum", kind="generate", outcome="finished") >= 0.05
    assert after[("stylebot_cached_adapters", ())] == 2


def test_stopping_closes_the_port(frontend: FrontEnd) -> None:
    port = free_port()
    settings = load_settings(environ={}, data_dir=frontend.settings.data_dir, metrics_port=port)
    server = start_metrics_server(settings, frontend.redis_url, role="worker")
    assert server is not None
    assert scrape(server.url)[("stylebot_role", (("role", "worker"),))] == 1
    server.stop()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_free_disk_space_is_exported_and_falls_as_the_disk_fills(
    frontend: FrontEnd, tmp_path: Path
) -> None:
    with mounted_tmpfs(tmp_path / "disk", "30m") as disk:
        port = free_port()
        settings = load_settings(environ={}, data_dir=disk / "data", metrics_port=port)
        server = start_metrics_server(settings, frontend.redis_url, role="frontend")
        assert server is not None
        try:
            free = scrape(server.url)[("stylebot_disk_free_bytes", ())]
            assert 29 * 2**20 < free <= 30 * 2**20  # the data directory's disk, not /tmp's
            fill(disk, leave=2**20)
            assert scrape(server.url)[("stylebot_disk_free_bytes", ())] <= 2**20
        finally:
            server.stop()


def test_a_metrics_port_in_use_is_a_one_line_start_up_error(frontend: FrontEnd) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        settings = load_settings(environ={}, data_dir=frontend.settings.data_dir, metrics_port=port)
        with pytest.raises(StartupError, match=f"cannot serve metrics on 127.0.0.1:{port}"):
            start_metrics_server(settings, frontend.redis_url, role="worker")

"""Prometheus metrics for the front end and the workers (`prometheus-client`).

Each process serves `/metrics` on `metrics_port` (off when unset or 0), bound to
`metrics_host` (127.0.0.1 unless set; containers set 0.0.0.0).

- Queue metrics are read from Redis when Prometheus scrapes (the same reading
  as `stylebot status`), so every process reports the same truth and a front
  end with no worker still shows the queue growing:
  `stylebot_queue_depth{kind}`, `stylebot_jobs_running{kind}`,
  `stylebot_workers`, `stylebot_redis_up`, and per live worker (what it announced,
  `stylebot.queue.worker_announcement`) `stylebot_worker_info{worker,host,device,
  family,base_model,version,state}`, `stylebot_worker_jobs_running{worker}`,
  `stylebot_worker_gpu_memory_bytes{worker}`.
- Job metrics are counted where jobs run, by wrapping the worker's job
  functions in `observed_job`: `stylebot_job_duration_seconds{kind,outcome}`
  (a histogram), `stylebot_jobs_total{kind,outcome}`,
  `stylebot_job_failures_total{kind}`, `stylebot_cached_adapters`.
- Free space on the data directory's disk: `stylebot_disk_free_bytes`.
- GPU memory, per visible device, in processes that loaded torch (workers):
  `stylebot_gpu_memory_allocated_bytes{device}`, `..._reserved_bytes`,
  `..._total_bytes`.
"""

from __future__ import annotations

import functools
import logging
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from stylebot.config import Settings
from stylebot.disk_space import free_bytes
from stylebot.logs import job_context
from stylebot.queue.redis_endpoint import RedisEndpoint
from stylebot.startup_checks import StartupError
from stylebot.terminal_status import JOB_KINDS, read_snapshot

log = logging.getLogger(__name__)

METRICS_PORT_SETTING = "metrics_port"
METRICS_HOST_SETTING = "metrics_host"
DEFAULT_METRICS_HOST = "127.0.0.1"
# A tiny-model generation takes well under a second, an SDXL training hours.
DURATION_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600)


def metrics_address(settings: Settings) -> tuple[str, int] | None:
    """(host, port) to serve /metrics on, or None when metrics are off."""
    if not settings.metrics_port:  # None or 0: off
        return None
    return settings.metrics_host or DEFAULT_METRICS_HOST, settings.metrics_port


class JobMetrics:
    """Counters and the duration histogram of jobs run in this process."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.duration = Histogram(
            "stylebot_job_duration_seconds",
            "Time a worker spent on a job, by kind and outcome",
            ["kind", "outcome"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.total = Counter(
            "stylebot_jobs",
            "Jobs a worker ended, by kind and outcome (finished, cancelled, failed, interrupted)",
            ["kind", "outcome"],
            registry=registry,
        )
        self.failures = Counter(
            "stylebot_job_failures",
            "Jobs that failed with an error, by kind",
            ["kind"],
            registry=registry,
        )
        self.cached_adapters = Gauge(
            "stylebot_cached_adapters",
            "LoRA adapters loaded in this worker's pipeline",
            registry=registry,
        )
        for kind in JOB_KINDS:  # so a dashboard shows 0 rather than no data
            self.failures.labels(kind)

    def record(self, kind: str, outcome: str, seconds: float) -> None:
        self.duration.labels(kind, outcome).observe(seconds)
        self.total.labels(kind, outcome).inc()
        if outcome == "failed":
            self.failures.labels(kind).inc()


# The process's job metrics; `observed_job` records into it and every registry
# built by `build_registry` includes it.
JOB_REGISTRY = CollectorRegistry(auto_describe=True)
JOB_METRICS = JobMetrics(JOB_REGISTRY)

JobFunction = Callable[[dict[str, Any], dict[str, Any]], Awaitable[dict[str, Any]]]


def observed_job(
    function: JobFunction,
    kind: str,
    metrics: JobMetrics | None = None,
    *,
    engine: Callable[[], object] = lambda: None,
) -> JobFunction:
    """Wrap an arq job function: logs inside carry the job id, and its duration and
    outcome are counted, and `engine()`'s loaded adapters. The wrapper keeps the
    function's name (arq's job name)."""

    @functools.wraps(function)
    async def run(ctx: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
        recorder = metrics or JOB_METRICS
        job_id = str(payload.get("job_id") or ctx.get("job_id") or "?")
        started = time.perf_counter()
        outcome = "failed"
        with job_context(job_id):
            try:
                result = await function(ctx, payload)
                outcome = "cancelled" if result.get("cancelled") else "finished"
                return result
            except BaseException as exc:
                # Cancelled by arq (SIGTERM, timeout): the job goes back on the
                # queue, which is not the job's failure.
                if not isinstance(exc, Exception):
                    outcome = "interrupted"
                raise
            finally:
                recorder.record(kind, outcome, time.perf_counter() - started)
                generator = getattr(engine(), "generator", None)
                adapters = getattr(generator, "loaded_adapters", None)
                if adapters is not None:
                    recorder.cached_adapters.set(len(adapters))

    return run


class QueueCollector(Collector):
    """Queue depth, running jobs and workers, read from Redis at each scrape."""

    def __init__(self, redis_url: str | RedisEndpoint) -> None:
        self.client = RedisEndpoint.of(redis_url).client(socket_timeout=3, socket_connect_timeout=3)
        # The HTTP server may serve two scrapes at once; one Redis reading at a time.
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("stylebot_redis_up", "1 when Redis answered this scrape")
        try:
            with self._lock:
                snapshot = read_snapshot(self.client)
        except redis.RedisError as exc:
            log.warning("metrics: Redis did not answer: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        depth = GaugeMetricFamily(
            "stylebot_queue_depth", "Jobs waiting for a worker, by kind", labels=["kind"]
        )
        running = GaugeMetricFamily(
            "stylebot_jobs_running", "Jobs a worker is running, by kind", labels=["kind"]
        )
        kinds = (
            set(JOB_KINDS)
            | {job.kind for job in snapshot.queued}
            | {job.kind for job in snapshot.running}
        )
        for kind in sorted(kinds):
            depth.add_metric([kind], snapshot.depth(kind))
            running.add_metric([kind], snapshot.running_count(kind))
        yield depth
        yield running
        workers = GaugeMetricFamily(
            "stylebot_workers", "Workers whose health check is current in Redis"
        )
        workers.add_metric([], len(snapshot.workers))
        yield workers
        live = GaugeMetricFamily(
            "stylebot_worker_info",
            "1 per live worker (its heartbeat is current), labelled with what it announced",
            labels=["worker", "host", "device", "family", "base_model", "version", "state"],
        )
        memory = GaugeMetricFamily(
            "stylebot_worker_gpu_memory_bytes",
            "The GPU memory of each live worker's device",
            labels=["worker"],
        )
        worker_jobs = GaugeMetricFamily(
            "stylebot_worker_jobs_running", "Jobs each live worker runs now", labels=["worker"]
        )
        for worker in snapshot.live:
            state = "draining" if worker.draining else "serving"
            labels = [worker.worker_id, worker.host, worker.device, worker.family]
            live.add_metric([*labels, worker.base_model, worker.version, state], 1)
            worker_jobs.add_metric([worker.worker_id], len(worker.jobs))
            if worker.gpu_memory_bytes is not None:
                memory.add_metric([worker.worker_id], worker.gpu_memory_bytes)
        yield live
        yield memory
        yield worker_jobs

    def close(self) -> None:
        self.client.close()


class GpuMemoryCollector(Collector):
    """CUDA memory per visible device, in a process that already imported torch.

    It never imports torch itself: the front end has no torch, and importing it
    just to report "no GPU" would cost seconds and hundreds of megabytes.
    """

    def collect(self) -> Iterator[Metric]:
        torch = sys.modules.get("torch")
        if torch is None or not torch.cuda.is_available():
            return
        allocated = GaugeMetricFamily(
            "stylebot_gpu_memory_allocated_bytes",
            "GPU memory held by tensors",
            labels=["device"],
        )
        reserved = GaugeMetricFamily(
            "stylebot_gpu_memory_reserved_bytes",
            "GPU memory reserved by torch's caching allocator",
            labels=["device"],
        )
        total = GaugeMetricFamily(
            "stylebot_gpu_memory_total_bytes", "GPU memory on the device", labels=["device"]
        )
        for index in range(torch.cuda.device_count()):
            label = [f"cuda:{index}"]
            allocated.add_metric(label, torch.cuda.memory_allocated(index))
            reserved.add_metric(label, torch.cuda.memory_reserved(index))
            total.add_metric(label, torch.cuda.get_device_properties(index).total_memory)
        yield allocated
        yield reserved
        yield total


class DiskCollector(Collector):
    """Free space where the data directory lives, read at each scrape: a full disk
    refuses uploads and results, so alert well before (the doctor warns too)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "stylebot_disk_free_bytes",
            "Free bytes on the file system of the data directory",
            value=free_bytes(self.data_dir),
        )


def build_registry(
    redis_url: str | RedisEndpoint, role: str, data_dir: Path | None = None
) -> tuple[CollectorRegistry, QueueCollector]:
    """Everything one process exports: queue, jobs, GPU, disk, and process basics."""
    registry = CollectorRegistry()
    queue = QueueCollector(redis_url)
    registry.register(queue)
    if data_dir is not None:
        registry.register(DiskCollector(data_dir))
    registry.register(JOB_REGISTRY)  # a registry is itself a collector
    registry.register(GpuMemoryCollector())
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    role_info = Gauge(
        "stylebot_role", "1, labelled with what this process is", ["role"], registry=registry
    )
    role_info.labels(role).set(1)
    return registry, queue


@dataclass
class MetricsServer:
    """A running /metrics endpoint; `stop()` closes the port."""

    host: str
    port: int
    _server: Any
    _thread: threading.Thread
    _queue: QueueCollector

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._queue.close()


def start_metrics_server(settings: Settings, redis_url: str, *, role: str) -> MetricsServer | None:
    """Serve /metrics in a background thread when metrics_port is set; None otherwise.

    `role` is "frontend" or "worker" (a label on `stylebot_role`).
    """
    address = metrics_address(settings)
    if address is None:
        return None
    host, port = address
    endpoint = RedisEndpoint.from_settings(settings, redis_url)
    registry, queue = build_registry(endpoint, role, settings.data_dir)
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:  # the port is taken, or the host is not this machine's
        queue.close()
        raise StartupError(
            f"cannot serve metrics on {host}:{port} ({exc.strerror}): set "
            "STYLEBOT_METRICS_PORT to a free port (each process its own), or leave it unset"
        ) from None
    log.info("metrics on http://%s:%d/metrics", host, port)
    return MetricsServer(host, port, server, thread, queue)

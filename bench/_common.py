"""Helpers shared by the benchmarks: the tiny model, sample images, statistics.

Not a benchmark itself (the leading underscore): the scripts import it by name
because Python puts `bench/` first on `sys.path` when one of them runs.
"""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from stylebot.engine.tiny_model import write_tiny_model


def tiny_model(root: Path, family: str = "sd15") -> Path:
    return write_tiny_model(root / f"tiny-{family}", seed=0, family=family)


def one_thread() -> None:
    """Torch on one thread: on a shared 2-core machine OpenMP spinning only adds noise."""
    torch.set_num_threads(1)


def sample_images(count: int, size: int = 160, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(count)
    ]


def timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def rss_mb() -> float:
    """This process's resident memory now (Linux /proc), in MiB."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def reset_peak_rss() -> None:
    """Start this process's peak resident memory (VmHWM) again from now (Linux 4.0+), so
    that a peak measured after loading a model is not the loading's."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM) since it started or since
    `reset_peak_rss`, in MiB."""
    return _status_mb("VmHWM")


def file_rss_mb() -> float:
    """The part of this process's resident memory that is pages of files it maps (RssFile):
    a model's weights, when they are mapped from its .safetensors files."""
    return _status_mb("RssFile")


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 2**10
    raise RuntimeError(f"no {field} in /proc/self/status")

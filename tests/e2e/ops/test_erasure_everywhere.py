"""/style delete and /forgetme leave nothing anywhere: a console front end and two
workers, as separate processes on one Redis, as a person runs them.

The person trains a style with a unique name and generates with a unique prompt, on
both workers (one of which then goes offline), deletes the style and erases
themselves. Afterwards no file under the data directory (SQLite, blobs, the logs of
the front end and of both workers, the Redis append-only file after its rewrite), no
file of either worker's own directory (their weight caches), and no Redis key or value
holds the prompt, the style name or the user's queue identity. The worker that was
offline drops its stale copy when it starts again.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from tests.support.leftovers import files_containing, redis_keys_containing
from tests.support.processes import StylebotProcess, child_env, wait_until, worker_host

from stylebot.bot.console.session import make_sample_images
from stylebot.queue.redis_server import EmbeddedRedis
from stylebot.terminal_status import read_snapshot

pytestmark = pytest.mark.slow

STARTUP_S = 180  # workers importing torch at once on a busy machine
JOB_S = 180
# The console's one user is user 1, and the workers take turns by this key.
OWNER = b"console:1"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    (data / "blobs").mkdir(parents=True)
    (data / "logs").mkdir()
    return data


@pytest.fixture
def shared_redis(data_dir: Path) -> Iterator[EmbeddedRedis]:
    """The data directory's embedded Redis, started by the test so that it outlives every
    process (the console joins it: same data directory)."""
    with EmbeddedRedis(data_dir) as server:
        yield server


def lora_copies(host: Path) -> list[Path]:
    loras = host / "cache" / "loras"
    return sorted(loras.glob("*.safetensors")) if loras.is_dir() else []


def saved_images(console: StylebotProcess) -> list[str]:
    """The generated images the console saved (not a training's report picture)."""
    saved = re.findall(r"saved (\S+\.png)", console.screen_text())
    return [path for path in saved if not Path(path).name.startswith("stylebot-training-")]


async def test_delete_and_forgetme_leave_nothing_in_files_logs_caches_or_redis(
    tmp_path: Path, tiny_model_dir: Path, data_dir: Path, shared_redis: EmbeddedRedis
) -> None:
    token = secrets.token_hex(8)
    style, prompt = f"ink{token}", f"a lighthouse {token} at dawn"
    needles = [token.encode(), OWNER]
    client = redis.Redis.from_url(shared_redis.url)
    # Snapshots uncompressed, so that a search of the file's bytes finds what is there.
    client.config_set("rdbcompression", "no")
    common = {
        "STYLEBOT_BASE_MODEL": str(tiny_model_dir),
        "STYLEBOT_DEVICE": "cpu",
        "STYLEBOT_LOG_FORMAT": "json",
    }
    hosts = {name: worker_host(tmp_path, name, data_dir) for name in ("host-a", "host-b")}

    def start_worker(name: str) -> StylebotProcess:
        env = child_env(**common, REDIS_URL=shared_redis.url, STYLEBOT_DATA_DIR=str(hosts[name]))
        log = data_dir / "logs" / f"{name}.log"
        return StylebotProcess.start(name, ["--verbose", "worker"], env, log)

    workers = {name: start_worker(name) for name in hosts}
    console = StylebotProcess.start(
        "console",
        ["--verbose", "console", "--no-worker"],
        child_env(
            **common,
            STYLEBOT_DATA_DIR=str(data_dir),
            STYLEBOT_TRAIN_STEPS="6",
            STYLEBOT_TRAIN_RESOLUTION="64",
            STYLEBOT_DEFAULT_SIZE="256",
            STYLEBOT_DEFAULT_STEPS="3",
        ),
        data_dir / "logs" / "frontend.log",
        screen_path=tmp_path / "screen.txt",  # the person's terminal, not a log
    )
    everyone = [console, *workers.values()]
    try:

        def workers_up() -> bool:
            names = [health.name for health in read_snapshot(client).workers]
            live = [w for w in workers.values() if w.running()]
            return all(any(n.endswith(f"-{w.pid}") for n in names) for w in live)

        await wait_until("both workers to be ready", workers_up, STARTUP_S, *everyone)
        refs = make_sample_images(tmp_path / "refs", 2)
        console.type_line(f"/upload {refs[0]} {refs[1]}")
        console.type_line("/consent own-work")
        console.type_line(f"/train {style}")
        console.type_line(f"/imagine {prompt} style:{style} seed:5")
        await wait_until(
            "the first image", lambda: len(saved_images(console)) == 1, JOB_S, *everyone
        )

        # The worker that generated goes offline, with the style's weights in its cache;
        # the other generates next, so both hold a copy.
        [first] = [name for name, host in hosts.items() if lora_copies(host)]
        offline = workers.pop(first)
        assert offline.stop() == 0, offline.describe()
        [online] = workers
        console.type_line(f"/imagine {prompt} again style:{style} seed:6")
        await wait_until(
            "the second image",
            lambda: len(saved_images(console)) == 2,
            JOB_S,
            console,
            *workers.values(),
        )
        [stale_copy] = lora_copies(hosts[first])
        assert lora_copies(hosts[online]) == [hosts[online] / "cache" / "loras" / stale_copy.name]
        # The searches below see what they look for: here it is, in Redis.
        assert redis_keys_containing(client, needles)

        console.type_line(f"/style delete {style}")
        console.type_line("/forgetme confirm")
        await wait_until(
            "the erasure",
            lambda: "Erased:" in console.screen_text(),
            JOB_S,
            console,
            *workers.values(),
        )
        # While the front end still runs, its database open: neither the database file
        # nor its write-ahead log keeps anything erased, nor does the blob store.
        while_running = {
            path: hits
            for path, hits in files_containing(data_dir, needles).items()
            if path.name.startswith("stylebot.sqlite3") or data_dir / "blobs" in path.parents
        }
        assert while_running == {}
        assert (data_dir / "stylebot.sqlite3").exists()
        console.type_line("/quit")
        console.end_input()
        exit_status = await asyncio.to_thread(console.process.wait, JOB_S)
        screen = console.screen_text()
        assert exit_status == 0, console.describe() + screen
        assert f"Deleted style {style}" in screen
        assert "Erased:" in screen

        # The running worker drops its copy as it is told; the offline one when it starts.
        await wait_until(
            "the running worker to drop its copy",
            lambda: not lora_copies(hosts[online]),
            30,
            *workers.values(),
        )
        workers[first] = start_worker(first)
        await wait_until("the restarted worker", workers_up, STARTUP_S, *workers.values())
        assert not stale_copy.exists()
    finally:
        for process in [console, *workers.values()]:
            if process.running():
                await asyncio.to_thread(process.stop)

    # Redis: no key or value; its append-only file, rewritten after the erasure.
    assert redis_keys_containing(client, needles) == {}
    async with asyncio.timeout(60):
        while True:
            info = client.info("persistence")
            if not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]:
                break
            await asyncio.sleep(0.05)
    assert info["aof_last_bgrewrite_status"] == "ok"
    client.close()
    aof = data_dir / "redis" / "appendonly.aof"
    assert aof.read_bytes().startswith(b"REDIS")  # the rewrite's snapshot preamble

    # Every file: the data directory (logs, SQLite, blobs, Redis), the workers' own.
    # The images the console saved are the person's copies, handed to them like a
    # chat message: they carry the prompt (which shows the search reads PNGs).
    outputs = data_dir / "outputs"
    assert set(files_containing(outputs, needles)) == {Path(p) for p in saved_images(console)}
    leftovers = {
        path: hits
        for root in (data_dir, *hosts.values())
        for path, hits in files_containing(root, needles).items()
        if outputs not in path.parents
    }
    assert leftovers == {}
    assert len(list((data_dir / "logs").glob("*.log"))) == 3

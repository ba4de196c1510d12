"""The console and the demo as a person runs them: separate processes, real everything."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from tests.support.redis_outage import shut_down_if_running

from stylebot.bot.console.session import make_sample_images
from stylebot.queue.redis_socket import socket_path_for

pytestmark = pytest.mark.slow


def run_stylebot(
    args: list[str], env: dict[str, str], stdin: str = "", timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the CLI to its end. Timed out, it is killed, and so is the embedded Redis it
    started in its own session, which would otherwise outlive the test."""
    try:
        return subprocess.run(
            [sys.executable, "-m", "stylebot", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        if "STYLEBOT_DATA_DIR" in env:
            shut_down_if_running(socket_path_for(Path(env["STYLEBOT_DATA_DIR"])))
        raise


@pytest.fixture
def env(tmp_path: Path, tiny_model_dir: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("STYLEBOT_")}
    base.pop("REDIS_URL", None)
    return {
        **base,
        "STYLEBOT_DATA_DIR": str(tmp_path / "data"),
        "STYLEBOT_BASE_MODEL": str(tiny_model_dir),
        "STYLEBOT_TRAIN_STEPS": "6",
        "STYLEBOT_TRAIN_RESOLUTION": "64",
        "STYLEBOT_DEFAULT_SIZE": "256",
        "STYLEBOT_DEFAULT_STEPS": "3",
    }


def test_a_piped_script_trains_generates_and_verifies(tmp_path: Path, env: dict[str, str]) -> None:
    samples = make_sample_images(tmp_path / "refs", 2)
    script = "\n".join(
        [
            f"/upload {samples[0]} {samples[1]}",
            "/consent own-work",
            "/train ink",
            "/imagine a lighthouse at dawn style:ink seed:5",
            "/styles",
            "/quit",
        ]
    )
    result = run_stylebot(["console"], env, script)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Received 2 image(s)" in result.stdout
    assert "Style ink is ready" in result.stdout
    assert "- ink (ready, yours)" in result.stdout
    # The picture of how training went (loss curve, previews), then the image.
    assert "How ink trained" in result.stdout
    report, saved = re.findall(r"saved (\S+\.png)", result.stdout)
    assert Path(report).name == "stylebot-training-ink.png"
    assert Image.open(report).width == 512
    image = Path(saved)
    assert image.is_file()

    verified = run_stylebot(["verify", str(image)], env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "style: ink" in verified.stdout
    assert "prompt: a lighthouse at dawn" in verified.stdout

    unmarked = run_stylebot(["verify", str(samples[0])], env)
    assert unmarked.returncode == 1
    assert "No stylebot watermark" in unmarked.stdout


def test_a_bad_upload_is_refused_and_nothing_is_stored(tmp_path: Path, env: dict[str, str]) -> None:
    fake = tmp_path / "holiday.png"
    fake.write_text("this is not a picture")
    result = run_stylebot(["console", "--no-worker"], env, f"/upload {fake}\n/status\n")
    assert result.returncode == 1
    assert "holiday.png" in result.stdout
    assert "Nothing was saved" in result.stdout
    blobs = Path(env["STYLEBOT_DATA_DIR"]) / "blobs"
    assert not blobs.exists() or not any(p.is_file() for p in blobs.rglob("*"))


@pytest.mark.parametrize("family", ["sd15", "flux"])
def test_the_demo_runs_from_an_empty_data_directory(
    tmp_path: Path, env: dict[str, str], family: str
) -> None:
    demo_env = {k: v for k, v in env.items() if not k.startswith("STYLEBOT_")}
    demo_env["STYLEBOT_DATA_DIR"] = str(tmp_path / "demo-data")
    result = run_stylebot(["demo", "--family", family], demo_env)
    assert result.returncode == 0, result.stdout + result.stderr
    built = tmp_path / "demo-data" / "models" / ("tiny-sd" if family == "sd15" else "tiny-flux")
    assert (built / "model_index.json").is_file()
    match = re.search(r"The watermarked image is at:\n\s+(\S+)", result.stdout)
    assert match, result.stdout
    assert Path(match.group(1)).is_file()
    assert "Made with stylebot" in result.stdout
    # Every family's tiny model gets the demo's small settings (FLUX.1's once trained
    # 300 steps at 512 px), and every command it names is spelled for the console.
    assert "steps: 12, size: 256x256" in result.stdout
    assert "\u27e6" not in result.stdout


def test_run_without_a_platform_token_says_what_to_set(env: dict[str, str]) -> None:
    result = run_stylebot(["run"], env)
    assert result.returncode == 2
    assert "DISCORD_TOKEN" in result.stderr
    assert "TELEGRAM_TOKEN" in result.stderr


def test_run_with_a_token_telegram_refuses_exits_cleanly(env: dict[str, str]) -> None:
    """No network here: the platform cannot be reached, and the CLI says so in one line."""
    result = run_stylebot(["run"], {**env, "TELEGRAM_TOKEN": "123:not-a-real-token"}, timeout=120)
    assert result.returncode == 1
    assert "telegram front end could not start" in result.stderr
    assert "Traceback" not in result.stderr


def test_forgetme_asks_then_erases_everything_and_the_ledger_verifies(
    tmp_path: Path, env: dict[str, str]
) -> None:
    samples = make_sample_images(tmp_path / "refs", 2)
    script = "\n".join(
        [
            f"/upload {samples[0]} {samples[1]}",
            "/consent own-work",
            "/train ink",
            "/imagine a lighthouse style:ink seed:5",
            "/forgetme",
            "/forgetme please",
            "/styles",
            "/forgetme confirm",
            "/styles",
            "/quit",
        ]
    )
    result = run_stylebot(["console"], env, script)
    out = result.stdout
    # The one bad line (`/forgetme please`) makes the exit status 1; the rest ran.
    assert result.returncode == 1, out + result.stderr
    assert "Style ink is ready" in out
    asked = out.index("This erases everything of yours here: 1 style(s), ")
    assert "Your styles: ink" in out[asked:]
    assert "Type /forgetme confirm to erase it all." in out[asked:]
    refused = out.index("! /forgetme takes nothing, or the word confirm")
    assert out.index("- ink (ready, yours)", refused) < out.index("Erased: 1 style(s)")
    assert "No styles yet" in out[out.index("Erased: 1 style(s)") :]
    data = Path(env["STYLEBOT_DATA_DIR"])
    assert [p for p in (data / "blobs").rglob("*") if p.is_file()] == []

    verified = run_stylebot(["consent", "verify"], env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "4 entries, intact" in verified.stdout  # consent, training, revocation, erasure

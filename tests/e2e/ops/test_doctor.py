"""`stylebot doctor` as the operator runs it: a separate process on a data directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.damage import flip_byte
from tests.support.processes import free_port
from tests.support.s3_server import SeaweedS3
from tests.support.single_file import write_sd_single_file
from tests.support.small_disk import fill, mounted_tmpfs
from tests.support.tiny_captioners import write_tiny_blip
from tests.support.tiny_clip import write_tiny_clip

from stylebot.storage.blobs import LocalBlobStore

# Plausible shapes, not real tokens: doctor checks the form, it cannot reach the platforms.
DISCORD_TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4OQ.GhIjKl.abcdefghijklmnopqrstuvwxyz0123456789AB"
TELEGRAM_TOKEN = "123456789:AAEabcdefghijklmnopqrstuvwxyz0123456"


def doctor(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("STYLEBOT_")
        and k not in ("REDIS_URL", "DISCORD_TOKEN", "TELEGRAM_TOKEN", "DISCORD_GUILD_ID")
    }
    return subprocess.run(
        [sys.executable, "-m", "stylebot", "--data-dir", str(tmp_path / "data"), "doctor", *args],
        env={**clean, **env},
        cwd=tmp_path,  # no stray ./stylebot.toml
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def lines_by_check(output: str) -> dict[str, str]:
    """check name -> its level, from the report's first column."""
    found = {}
    for line in output.splitlines():
        level, _, rest = line.partition("  ")
        if level.strip() in ("OK", "WARN", "FAIL"):
            name = rest.strip().split("  ")[0]
            found[name] = level.strip()
    return found


def test_a_fresh_install_fails_on_the_missing_model_and_says_how_to_build_it(
    tmp_path: Path,
) -> None:
    result = doctor(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    levels = lines_by_check(result.stdout)
    assert levels["model"] == "FAIL"
    assert f"fix: set STYLEBOT_BASE_MODEL, or run `stylebot model tiny {tmp_path}" in result.stdout
    assert levels["tokens"] == "WARN"
    assert levels["redis"] == "OK"  # the embedded Redis can start
    assert levels["disk"] == "OK"
    assert levels["signing certificate"] == "WARN"
    assert "not configured" in result.stdout
    assert levels["signature lifetime"] == "WARN"  # no time-stamping authority set
    assert "1 failed" in result.stdout
    # Checking changed nothing: no data directory, no embedded Redis files.
    assert not (tmp_path / "data").exists()


def test_a_ready_host_passes_with_the_model_loaded(tmp_path: Path, tiny_model_dir: Path) -> None:
    result = doctor(
        tmp_path,
        STYLEBOT_BASE_MODEL=str(tiny_model_dir),
        STYLEBOT_DEVICE="cpu",
        DISCORD_TOKEN=DISCORD_TOKEN,
        TELEGRAM_TOKEN=TELEGRAM_TOKEN,
        STYLEBOT_METRICS_PORT=str(free_port()),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    levels = lines_by_check(result.stdout)
    assert set(levels) == {
        "settings",
        "tokens",
        "redis",
        "model",
        "captioner",
        "gpu",
        "controlnet",
        "disk",
        "blob store",
        "metrics",
        "signing certificate",
        "signature lifetime",
    }
    assert "FAIL" not in levels.values()
    assert levels["model"] == "OK"
    assert f"{tiny_model_dir} loads on cpu" in result.stdout
    assert "family sd15, float32, quantisation none" in result.stdout
    assert "CreativeML Open RAIL-M" in result.stdout
    assert "will start Discord and Telegram" in result.stdout
    assert levels["metrics"] == "OK"
    assert "none configured" in result.stdout  # no captioner


def test_the_object_store_is_checked_by_a_probe_that_leaves_nothing_behind(
    tmp_path: Path, s3_server: SeaweedS3, s3_prefix: str
) -> None:
    settings = s3_server.env(s3_prefix)
    result = doctor(tmp_path, "--no-model", **settings)
    assert lines_by_check(result.stdout)["blob store"] == "OK", result.stdout + result.stderr
    assert f"{settings['STYLEBOT_BLOB_URL']} answers and takes writes" in result.stdout
    listed = s3_server.client().list_object_versions(Bucket=s3_server.BUCKET, Prefix=s3_prefix)
    assert listed.get("Versions", []) == []

    wrong_secret = "not-the-secret-d0d0d0d0"
    refused = doctor(
        tmp_path, "--no-model", **{**settings, "STYLEBOT_S3_SECRET_ACCESS_KEY": wrong_secret}
    )
    assert refused.returncode == 1
    assert lines_by_check(refused.stdout)["blob store"] == "FAIL"
    assert "SignatureDoesNotMatch" in refused.stdout
    assert "fix: check STYLEBOT_BLOB_URL's bucket, STYLEBOT_S3_ENDPOINT_URL" in refused.stdout
    assert wrong_secret not in refused.stdout + refused.stderr

    nobody = f"http://127.0.0.1:{free_port()}"
    unreachable = doctor(tmp_path, "--no-model", **{**settings, "STYLEBOT_S3_ENDPOINT_URL": nobody})
    assert lines_by_check(unreachable.stdout)["blob store"] == "FAIL"
    assert f'Could not connect to the endpoint URL: "{nobody}/' in unreachable.stdout


def test_doctor_names_a_flux_bases_variant_quantisation_and_licence(
    tmp_path: Path, tiny_flux_model_dir: Path
) -> None:
    result = doctor(
        tmp_path,
        STYLEBOT_BASE_MODEL=str(tiny_flux_model_dir),
        STYLEBOT_DEVICE="cpu",
        STYLEBOT_BASE_QUANTIZATION="int8",
    )
    levels = lines_by_check(result.stdout)
    assert levels["model"] == "OK", result.stdout + result.stderr
    assert "family flux-dev, float32, quantisation int8" in result.stdout
    assert "training needs about 16 GB on a GPU (none here)" in result.stdout
    assert "FLUX.1 [dev] Non-Commercial License" in result.stdout


def test_unreachable_redis_and_a_garbled_token_fail_with_fixes(tmp_path: Path) -> None:
    result = doctor(
        tmp_path,
        "--no-model",
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
        TELEGRAM_TOKEN="not-a-token",
        STYLEBOT_DEVICE="cuda",
    )
    assert result.returncode == 1
    levels = lines_by_check(result.stdout)
    assert "model" not in levels  # --no-model
    assert levels["redis"] == "FAIL"
    assert "fix: start Redis there, or fix REDIS_URL" in result.stdout
    assert levels["tokens"] == "FAIL"
    assert "TELEGRAM_TOKEN does not look like a bot token" in result.stdout
    # No CUDA on this machine, and the settings demand it.
    assert levels["gpu"] == "FAIL"
    assert "3 failed" in result.stdout


def test_a_single_file_model_is_checked_with_its_configured_component_configs(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    """Loaded as the worker loads it: offline, a single file needs STYLEBOT_BASE_MODEL_CONFIG."""
    checkpoint = write_sd_single_file(tiny_model_dir, tmp_path / "tiny-sd.safetensors")
    result = doctor(
        tmp_path,
        STYLEBOT_BASE_MODEL=str(checkpoint),
        STYLEBOT_BASE_MODEL_CONFIG=str(tiny_model_dir),
        STYLEBOT_DEVICE="cpu",
        HF_HUB_OFFLINE="1",
        STYLEBOT_METRICS_PORT=str(free_port()),
    )
    levels = lines_by_check(result.stdout)
    assert levels["model"] == "OK", result.stdout + result.stderr
    assert f"{checkpoint} loads on cpu" in result.stdout


def test_check_blobs_names_each_damaged_file_and_passes_once_it_is_repaired(
    tmp_path: Path,
) -> None:
    store = LocalBlobStore(tmp_path / "data" / "blobs")
    keys = [store.put_sync(f"stored file {n}".encode() * 200) for n in range(3)]
    flip_byte(store.path(keys[1]))

    result = doctor(tmp_path, "--no-model", "--check-blobs")
    assert result.returncode == 1, result.stdout + result.stderr
    assert lines_by_check(result.stdout)["blobs"] == "FAIL"
    assert "1 of 3 stored files are damaged (content does not match the name): " in result.stdout
    assert str(store.path(keys[1])) in result.stdout
    assert str(store.path(keys[0])) not in result.stdout
    assert "restore those files" in result.stdout

    store.put_sync(b"stored file 1" * 200)  # the right bytes again
    repaired = doctor(tmp_path, "--no-model", "--check-blobs")
    assert lines_by_check(repaired.stdout)["blobs"] == "OK"
    assert "all 3 stored files" in repaired.stdout
    # Without the flag the store is not read.
    assert "blobs" not in lines_by_check(doctor(tmp_path, "--no-model").stdout)


def test_a_data_directory_that_is_a_file_fails_the_disk_check(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("not a directory")
    result = doctor(tmp_path, "--no-model")
    assert lines_by_check(result.stdout)["disk"] == "FAIL", result.stdout
    assert f"{tmp_path / 'data'} is a file, not a directory" in result.stdout


def test_low_disk_space_warns_before_it_fails(tmp_path: Path) -> None:
    """On a real 30 MiB disk: below STYLEBOT_DISK_LOW_FREE_MB a warning, nearly full a
    failure, long before uploads are refused."""
    with mounted_tmpfs(tmp_path / "disk", "30m") as disk:
        result = doctor(disk, "--no-model")
        assert lines_by_check(result.stdout)["disk"] == "FAIL", result.stdout  # < 1 GiB
        result = doctor(disk, "--no-model", STYLEBOT_DISK_LOW_FREE_MB="100")
        assert lines_by_check(result.stdout)["disk"] == "WARN", result.stdout
        assert "below STYLEBOT_DISK_LOW_FREE_MB=100" in result.stdout
        fill(disk, leave=5 * 1024 * 1024)
        result = doctor(disk, "--no-model", STYLEBOT_DISK_LOW_FREE_MB="100")
        assert lines_by_check(result.stdout)["disk"] == "FAIL", result.stdout  # < 10 MiB


def test_the_captioner_is_loaded_and_named_by_family_or_refused_with_a_fix(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    blip = write_tiny_blip(tmp_path / "blip")
    clip = write_tiny_clip(tmp_path / "clip", tiny_model_dir / "tokenizer")
    ready = doctor(tmp_path, STYLEBOT_CAPTIONER=str(blip), STYLEBOT_DEVICE="cpu")
    wrong = doctor(tmp_path, STYLEBOT_CAPTIONER=str(clip), STYLEBOT_DEVICE="cpu")

    assert lines_by_check(ready.stdout)["captioner"] == "OK", ready.stdout + ready.stderr
    assert f"{blip} (blip) loads on cpu and captions a test image" in ready.stdout
    assert lines_by_check(wrong.stdout)["captioner"] == "FAIL", wrong.stdout + wrong.stderr
    assert "is not a captioner" in wrong.stdout
    assert "fix: set STYLEBOT_CAPTIONER to a Florence-2" in wrong.stdout


def test_the_controlnet_line_names_its_family_and_refuses_another_familys(
    tmp_path: Path,
    tiny_model_dir: Path,
    tiny_flux_model_dir: Path,
    tiny_controlnet_dir: Path,
    tiny_flux_controlnet_dir: Path,
    tiny_sd3_controlnet_dir: Path,
) -> None:
    fits = doctor(
        tmp_path,
        STYLEBOT_BASE_MODEL=str(tiny_model_dir),
        STYLEBOT_DEVICE="cpu",
        STYLEBOT_CONTROLNET_EDGES=str(tiny_controlnet_dir),
    )
    assert lines_by_check(fits.stdout)["controlnet"] == "OK", fits.stdout + fits.stderr
    assert f"edges {tiny_controlnet_dir}: a ControlNetModel for this sd15 model" in fits.stdout
    flux = doctor(
        tmp_path,
        STYLEBOT_BASE_MODEL=str(tiny_flux_model_dir),
        STYLEBOT_DEVICE="cpu",
        STYLEBOT_CONTROLNET_EDGES=str(tiny_flux_controlnet_dir),
    )
    assert lines_by_check(flux.stdout)["controlnet"] == "OK", flux.stdout + flux.stderr
    assert f"{tiny_flux_controlnet_dir}: a FluxControlNetModel for this flux model" in flux.stdout
    # The operator named SD 3.5's ControlNet on a FLUX.1 worker.
    refused = doctor(
        tmp_path,
        STYLEBOT_BASE_MODEL=str(tiny_flux_model_dir),
        STYLEBOT_DEVICE="cpu",
        STYLEBOT_CONTROLNET_EDGES=str(tiny_sd3_controlnet_dir),
    )
    assert lines_by_check(refused.stdout)["controlnet"] == "FAIL", refused.stdout
    assert "is a ControlNet for SD 3.5 (SD3ControlNetModel), not for this worker's flux" in (
        refused.stdout
    )
    assert "name a FluxControlNetModel trained for flux" in refused.stdout

"""Every setting has a type and a range: a bad value stops every process with one line.

The table below holds bad values for EVERY Settings field; a new setting without
a rule or without a row here fails `test_every_setting_has_a_rule_and_a_row`.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
from tests.support.processes import child_env

from stylebot.config import ENV_PREFIX, UNPREFIXED_ENV, Settings, load_settings, rule_for
from stylebot.setting_rules import SettingsError

# field -> environment values it must refuse (the empty string means "unset", so it
# is not in here; a TOML-only bad value is in BAD_IN_TOML).
BAD_IN_ENV: dict[str, tuple[str, ...]] = {
    "data_dir": ("data\x01dir",),
    "redis_url": ("garbage", "localhost:6379", "redis://", "redis://h:99999/0", "http://h"),
    "blob_url": (
        "s3://",
        "s3://B",
        "s3://Bucket/x",
        "https://bucket.example/x",
        "s3://b!/x",
        "a\x01b",
    ),
    "s3_endpoint_url": ("minio:9000", "ftp://h", "https://"),
    "s3_region": ("us east 1", "US-EAST-1", "eu_west_1"),
    "s3_access_key_id": ("two words",),
    "s3_secret_access_key": ("two words",),
    "s3_addressing_style": ("dns", "vhost"),
    "base_model": ("models/sd\n15",),
    "device": ("gpu", "cuda:x", "CPU "),
    "dtype": ("float64", "half"),
    "model_variant": ("fast",),
    "base_model_family": ("sd4", "flux2"),
    "base_quantization": ("int4", "fp8", "yes"),
    "base_model_config": ("a\x00b",),
    "train_steps": ("-5", "0", "1.5", "many", "100001"),
    "train_resolution": ("0", "-512", "500", "8192"),
    "lora_rank": ("0", "2048", "x"),
    "learning_rate": ("nan", "inf", "0", "-1e-4", "2", "fast"),
    "train_flip": ("maybe", "2", "yess"),
    "train_min_snr_gamma": ("-1", "nan", "1000"),
    "train_noise_offset": ("-0.1", "1.5", "inf"),
    "train_gradient_checkpointing": ("sometimes",),
    "train_mixed_precision": ("fp8",),
    "train_optimizer": ("sgd",),
    "train_method": ("dreambooth",),
    "train_lora_variant": ("loha", "DoRA "),
    "clip_model": ("openai/clip\x00vit", "a\nb"),
    "captioner": ("microsoft/Florence\x00-2", "a\nb"),
    "controlnet_edges": ("lllyasviel/sd-controlnet\x00canny", "a\nb"),
    "controlnet_depth": ("lllyasviel/sd-controlnet\x00depth", "a\nb"),
    "depth_estimator": ("Intel/dpt\x00large", "a\nb"),
    "train_lr_schedule": ("linear", "cosine-ish"),
    "train_lr_warmup": ("-0.1", "0.9", "nan"),
    "train_ema_decay": ("-0.5", "1", "1.5", "inf"),
    "train_caption_dropout": ("-0.1", "1.5", "nan", "often"),
    "train_shuffle_tags": ("shuffled",),
    "checkpoint_every_steps": ("-1", "often"),
    "train_timeout_s": ("0", "-1", "1e9"),
    "min_train_images": ("0", "-3"),
    "max_train_images": ("0", "10000"),
    "default_steps": ("0", "-1"),
    "max_steps": ("0", "100000"),
    "default_guidance": ("-1", "nan", "100"),
    "default_size": ("0", "500", "100000"),
    "min_size": ("0", "250"),
    "max_size": ("0", "1001", "5000"),
    "max_images_per_request": ("0", "1000"),
    "max_prompt_chars": ("0", "-1"),
    "generate_timeout_s": ("0", "-5", "forever"),
    "max_upload_bytes": ("0", "-1", "20MB"),
    "max_upload_pixels": ("0", "-1"),
    "images_per_user_per_day": ("-1", "lots"),
    "images_per_server_per_day": ("-1",),
    "trainings_per_user_per_day": ("-1",),
    "trainings_per_server_per_day": ("-1",),
    "requests_per_window": ("-1",),
    "rate_window_s": ("0", "-60"),
    "erasures_per_user_per_day": ("-1", "often"),
    "max_queued_per_user": ("-1",),
    "max_queued_per_server": ("-1",),
    "prompt_blocklist": ("gore,\x07beep",),
    "c2pa_cert_chain": ("cert\x00.pem",),
    "c2pa_private_key": ("key\n.pem",),
    "redis_tls_ca_file": ("ca\x00.pem",),
    "redis_tls_cert_file": ("cert\n.pem",),
    "redis_tls_key_file": ("key\x07.pem",),
    "max_loaded_adapters": ("0",),
    "worker_concurrency": ("0", "-1"),
    "worker_cache_max_bytes": ("-1", "2GB"),
    "max_upload_files": ("0", "many"),
    "max_upload_total_bytes": ("10", "-5"),
    "image_work_concurrency": ("0", "2.5"),
    "optouts_per_user": ("-1",),
    "optouts_per_user_per_day": ("-1", "x"),
    "c2pa_tsa_url": ("ftp://tsa.example", "timestamp.example.com"),
    "max_batch_size": ("0",),
    "lora_hotswap": ("perhaps",),
    "lora_hotswap_rank": ("0",),
    "mixed_style_batches": ("sometimes",),
    "job_lease_s": ("0", "-1", "nan", "0.5"),
    "disk_low_free_mb": ("-1", "lots"),
    "metrics_port": ("99999", "-1", "http"),
    "metrics_host": ("local host", "h/1"),
    "verify_web_port": ("65536", "-1", "web"),
    "verify_web_host": ("web host", "h/1", "<host>"),
    "verify_web_trusted_proxies": ("localhost", "10.0.0.0/33", "1.2.3.4;5.6.7.8"),
    "log_format": ("xml",),
    "operators": ("123456789",),
    "discord_token": ("two words",),
    "discord_guild_id": ("0", "guild"),
    "telegram_token": ("123:abc def",),
    "telegram_api_url": ("localhost:8081", "ftp://h"),
}
# What the environment cannot say: the wrong type in TOML.
BAD_IN_TOML = {
    "data_dir": "5",
    "train_flip": '"maybe"',
    "train_steps": "1.5",
    "learning_rate": "true",
    "prompt_blocklist": "7",
    "log_format": "1",
}


def variable(name: str) -> str:
    return name.upper() if name in UNPREFIXED_ENV else ENV_PREFIX + name.upper()


def test_every_setting_has_a_rule_and_a_row() -> None:
    fields = [f for f in dataclasses.fields(Settings) if f.name != "extra"]
    assert [f.name for f in fields if rule_for(f) is None] == []
    assert sorted(BAD_IN_ENV) == sorted(f.name for f in fields)


@pytest.mark.parametrize(
    ("name", "value"), [(name, value) for name, values in BAD_IN_ENV.items() for value in values]
)
def test_a_bad_value_is_refused_in_one_line_naming_it(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(environ={variable(name): value})
    message = str(refused.value)
    assert "\n" not in message
    value = repr(value)[1:-1]  # control characters are shown escaped
    if name.endswith(("_token", "_secret_access_key")):
        assert message.startswith(f"{variable(name)}=***: must be ")
        assert value not in message  # a token never reaches a terminal or a log
    elif name == "operators":
        assert message.startswith(f"{variable(name)}={value}: operator ")
    else:
        assert message.startswith(f"{variable(name)}={value}: must be ")


@pytest.mark.parametrize(("name", "value"), sorted(BAD_IN_TOML.items()))
def test_a_value_of_the_wrong_type_in_the_file_is_refused(
    tmp_path: Path, name: str, value: str
) -> None:
    config = tmp_path / "stylebot.toml"
    config.write_text(f"{name} = {value}\n")
    with pytest.raises(SettingsError, match=rf"^{name} = .* in {config}: must be "):
        load_settings(config, environ={})


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"STYLEBOT_MIN_SIZE": "2000"}, "STYLEBOT_MIN_SIZE=2000: must be at most STYLEBOT_MAX_"),
        ({"STYLEBOT_MAX_SIZE": "128"}, "STYLEBOT_MAX_SIZE=128: must be at least STYLEBOT_MIN_SIZE"),
        ({"STYLEBOT_DEFAULT_SIZE": "2048"}, "STYLEBOT_DEFAULT_SIZE=2048: must be at most"),
        ({"STYLEBOT_DEFAULT_STEPS": "80"}, "STYLEBOT_DEFAULT_STEPS=80: must be at most"),
        ({"STYLEBOT_MIN_TRAIN_IMAGES": "50"}, "STYLEBOT_MIN_TRAIN_IMAGES=50: must be at most"),
        (
            {"STYLEBOT_CONTROLNET_DEPTH": "lllyasviel/sd-controlnet-depth"},
            "STYLEBOT_CONTROLNET_DEPTH=lllyasviel/sd-controlnet-depth: must be set together "
            "with STYLEBOT_DEPTH_ESTIMATOR",
        ),
        (
            {"STYLEBOT_C2PA_CERT_CHAIN": "/etc/chain.pem"},
            "STYLEBOT_C2PA_CERT_CHAIN=/etc/chain.pem: must be set together with "
            "STYLEBOT_C2PA_PRIVATE_KEY",
        ),
        (
            {
                "REDIS_URL": "rediss://redis.example:6380/0",
                "STYLEBOT_REDIS_TLS_KEY_FILE": "/etc/worker.key",
            },
            "STYLEBOT_REDIS_TLS_KEY_FILE=/etc/worker.key: must be set together with "
            "STYLEBOT_REDIS_TLS_CERT_FILE",
        ),
        (
            {"REDIS_URL": "redis://redis.example:6379/0", "STYLEBOT_REDIS_TLS_CA_FILE": "/ca.pem"},
            "STYLEBOT_REDIS_TLS_CA_FILE=/ca.pem: is for a TLS Redis, but REDIS_URL is not a "
            "rediss:// URL",
        ),
    ],
)
def test_settings_that_contradict_each_other_are_refused(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(environ=environ)
    assert str(refused.value).startswith(message)


def test_good_values_load_as_their_types() -> None:
    settings = load_settings(
        environ={
            "STYLEBOT_TRAIN_FLIP": "Yes",
            "STYLEBOT_LORA_HOTSWAP": "off",
            "STYLEBOT_LEARNING_RATE": "1e-4",
            "STYLEBOT_JOB_LEASE_S": "1.5",
            "STYLEBOT_METRICS_PORT": "0",
            "STYLEBOT_DEVICE": "cuda:1",
            "REDIS_URL": "unix:///run/redis.sock",
            "STYLEBOT_PROMPT_BLOCKLIST": "gore, spam ,",
            "STYLEBOT_MIN_SIZE": "512",
            "STYLEBOT_MAX_SIZE": "512",
            "STYLEBOT_DEFAULT_SIZE": "512",
        }
    )
    assert settings.train_flip is True
    assert settings.lora_hotswap is False
    assert settings.learning_rate == 1e-4
    assert settings.job_lease_s == 1.5
    assert settings.metrics_port == 0
    assert settings.device == "cuda:1"
    assert settings.prompt_blocklist == ("gore", "spam")


def test_trusted_proxies_are_addresses_or_networks_in_canonical_form() -> None:
    settings = load_settings(
        environ={"STYLEBOT_VERIFY_WEB_TRUSTED_PROXIES": "127.0.0.1, 10.1.2.3/8,,::1"}
    )
    assert settings.verify_web_trusted_proxies == ("127.0.0.1/32", "10.0.0.0/8", "::1/128")
    assert load_settings(environ={}).verify_web_trusted_proxies == ()
    assert load_settings(environ={}).verify_web_port == 0  # the page is off


# One bad setting per entry point, as the issue found them: each process stops
# before it starts anything (no data directory), with one line and exit status 2.
ENTRY_POINTS = [
    (["worker"], "STYLEBOT_JOB_LEASE_S", "0"),
    (["worker", "--burst"], "STYLEBOT_METRICS_PORT", "99999"),
    (["run"], "STYLEBOT_TRAIN_STEPS", "-5"),
    (["console"], "STYLEBOT_LEARNING_RATE", "nan"),
    (["demo"], "STYLEBOT_TRAIN_RESOLUTION", "0"),
    (["doctor", "--no-model"], "STYLEBOT_MIN_SIZE", "2000"),
    (["status"], "STYLEBOT_TRAIN_FLIP", "maybe"),
    (["console"], "STYLEBOT_GENERATE_TIMEOUT_S", "0"),
    (["run"], "REDIS_URL", "localhost:6379"),
]


@pytest.mark.parametrize(("command", "name", "value"), ENTRY_POINTS)
def test_every_entry_point_stops_with_one_line_and_status_2(
    tmp_path: Path, command: list[str], name: str, value: str
) -> None:
    data_dir = tmp_path / "data"
    result = subprocess.run(
        [sys.executable, "-m", "stylebot", "--data-dir", str(data_dir), *command],
        env=child_env(**{name: value, "TELEGRAM_TOKEN": "123:abc"}),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith(f"stylebot: {name}={value}: must be ")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stdout == ""
    assert not data_dir.exists()


def test_the_object_store_key_id_and_secret_come_together_and_the_secret_stays_hidden() -> None:
    with pytest.raises(SettingsError) as only_id:
        load_settings(environ={"STYLEBOT_S3_ACCESS_KEY_ID": "AKIAEXAMPLE"})
    assert str(only_id.value) == (
        "STYLEBOT_S3_ACCESS_KEY_ID=AKIAEXAMPLE: must be set together with "
        "STYLEBOT_S3_SECRET_ACCESS_KEY"
    )
    with pytest.raises(SettingsError) as only_secret:
        load_settings(environ={"STYLEBOT_S3_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG"})
    assert str(only_secret.value) == (
        "STYLEBOT_S3_SECRET_ACCESS_KEY=***: must be set together with STYLEBOT_S3_ACCESS_KEY_ID"
    )
    both = load_settings(
        environ={
            "STYLEBOT_BLOB_URL": "s3://stylebot-blobs/eu/",
            "STYLEBOT_S3_ACCESS_KEY_ID": "AKIAEXAMPLE",
            "STYLEBOT_S3_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG",
        }
    )
    assert both.blob_url == "s3://stylebot-blobs/eu/"
    assert "wJalrXUtnFEMI" not in repr(both)


def test_a_bad_redis_url_is_refused_without_showing_its_password() -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(environ={"REDIS_URL": "rediss://worker:s3cret-pass@redis.example:99999/0"})
    assert "REDIS_URL=rediss://worker:***@redis.example" in str(refused.value)
    assert "s3cret-pass" not in str(refused.value)

"""deploy/systemd units: `systemd-analyze verify` (on a copy whose ExecStart points at
this venv's stylebot, since /opt/stylebot does not exist here), plus the settings
a clean stop and one-worker-per-GPU depend on."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.unit.deploy.deploy_files import setting_names
from tests.unit.test_env_example import example_variables

UNITS = Path(__file__).resolve().parents[3] / "deploy" / "systemd"
INSTALLED_STYLEBOT = "/opt/stylebot/.venv/bin/stylebot"


def read_unit(name: str) -> configparser.RawConfigParser:
    # strict=False: systemd allows a key to repeat (Environment=, After=).
    parser = configparser.RawConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read(UNITS / name)
    return parser


def environment_names(name: str) -> set[str]:
    names = set()
    for line in (UNITS / name).read_text().splitlines():
        if line.startswith("Environment="):
            names.add(line.removeprefix("Environment=").split("=", 1)[0])
    return names


def test_there_is_a_front_end_unit_and_a_worker_template() -> None:
    assert {p.name for p in UNITS.glob("*.service")} == {
        "stylebot-frontend.service",
        "stylebot-worker@.service",
    }


@pytest.mark.parametrize(
    ("unit", "subcommand"),
    [("stylebot-frontend.service", "run"), ("stylebot-worker@.service", "worker")],
)
def test_units_run_stylebot_as_a_user_and_stop_it_with_sigterm(unit: str, subcommand: str) -> None:
    service = read_unit(unit)["Service"]
    assert service["ExecStart"].endswith(
        f"{INSTALLED_STYLEBOT} --data-dir /var/lib/stylebot {subcommand}"
    )
    assert service["User"] == "stylebot"
    assert service["KillSignal"] == "SIGTERM"
    # SIGTERM only to stylebot, which stops an embedded Redis it started itself.
    assert service["KillMode"] == "mixed"
    assert service["Restart"] == "on-failure"
    # A configuration error (exit 2) needs the operator, not a restart loop.
    assert service["RestartPreventExitStatus"] == "2"
    assert read_unit(unit)["Install"]["WantedBy"] == "multi-user.target"


def test_each_worker_instance_gets_its_own_gpu_and_metrics_port() -> None:
    lines = (UNITS / "stylebot-worker@.service").read_text().splitlines()
    assert "Environment=CUDA_VISIBLE_DEVICES=%i" in lines
    exec_start = read_unit("stylebot-worker@.service")["Service"]["ExecStart"]
    assert exec_start.startswith("/usr/bin/env STYLEBOT_METRICS_PORT=911%i ")
    worker_stop = int(read_unit("stylebot-worker@.service")["Service"]["TimeoutStopSec"])
    frontend_stop = int(read_unit("stylebot-frontend.service")["Service"]["TimeoutStopSec"])
    assert worker_stop > frontend_stop  # a job gets longer to end than a chat connection


@pytest.mark.parametrize("unit", ["stylebot-frontend.service", "stylebot-worker@.service"])
def test_units_set_only_real_settings_and_none_the_env_file_would_override(unit: str) -> None:
    """systemd lets EnvironmentFile= override Environment= (systemd.exec(5)): a setting
    the unit fixes must not be one the env file (a copy of .env.example) sets."""
    exec_start = read_unit(unit)["Service"]["ExecStart"].split()
    # `/usr/bin/env NAME=value ... stylebot`: assignments before the program.
    on_command_line = {word.split("=", 1)[0] for word in exec_start if "=" in word}
    ours = {name for name in environment_names(unit) | on_command_line if "STYLEBOT_" in name}
    assert ours, unit
    assert ours <= setting_names()
    in_env_file = set(example_variables())
    assert not (environment_names(unit) & in_env_file), unit


def test_systemd_analyze_verify_finds_nothing_to_complain_about(tmp_path: Path) -> None:
    assert shutil.which("systemd-analyze"), "needs systemd-analyze (Debian package: systemd)"
    stylebot = Path(sys.executable).with_name("stylebot")
    assert stylebot.is_file()
    for unit in UNITS.glob("*.service"):
        text = unit.read_text().replace(INSTALLED_STYLEBOT, str(stylebot))
        (tmp_path / unit.name).write_text(text)
    result = subprocess.run(
        [
            "systemd-analyze",
            "verify",
            str(tmp_path / "stylebot-frontend.service"),
            # A template is verified through an instance of it.
            str(tmp_path / "stylebot-worker@0.service"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # verify exits 0 on unknown keys and bad values too, printing a warning.
    assert result.stderr.strip() == "", result.stderr


@pytest.mark.parametrize("unit", ["stylebot-frontend.service", "stylebot-worker@.service"])
def test_units_keep_the_data_directory_and_its_files_private(unit: str) -> None:
    service = read_unit(unit)["Service"]
    assert service["UMask"] == "0077"
    assert service["StateDirectoryMode"] == "0700"

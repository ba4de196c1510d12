"""deploy/Dockerfile.frontend and Dockerfile.worker, parsed (no Docker engine runs here).

The front end image leaves out torch and diffusers; that only works while the
front end never imports them, so one test imports the front end in a fresh
interpreter, reads a watermark like /verify does, and checks that everything
it loaded is installed by the Dockerfile and that torch was not loaded.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from tests.unit.deploy.deploy_files import COMPOSE, load

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
WORKER_ONLY = {
    "torch",
    "diffusers",
    "transformers",
    "peft",
    "accelerate",
    "safetensors",
    "torchao",
}
# Distributions that provide the same import (the headless OpenCV needs no libGL).
SAME_MODULES = {"opencv-python": "opencv-python-headless"}
# Loaded in this venv but not needed by the front end: imported only when present.
OPTIONAL_HERE = {
    "hiredis",  # redis-py's optional C parser
    "rich",  # httpx (python-telegram-bot's client) tries it for its CLI
    "pygments",  # likewise
    "setuptools",  # its distutils hook, loaded by a .pth file in every venv
}

FRONT_END_PROBE = """
import importlib.metadata, io, json, sys
import stylebot.bootstrap, stylebot.cli, stylebot.bot.console.adapter
import stylebot.bot.discord.adapter, stylebot.bot.telegram.adapter, stylebot.bot.web.server
import stylebot.metrics, stylebot.terminal_status, stylebot.logs, stylebot.doctor
from PIL import Image
from stylebot.bootstrap import PngWatermarkReader
buffer = io.BytesIO()
Image.new("RGB", (256, 256), "white").save(buffer, "PNG")
PngWatermarkReader().read(buffer.getvalue())
owners = importlib.metadata.packages_distributions()
tops = {name.split(".")[0] for name in sys.modules}
print(json.dumps(sorted({d for top in tops for d in owners.get(top, [])})))
"""


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    joined: list[str] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        joined.append(pending + stripped)
        pending = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1]) for text in joined]


def values(path: Path, instruction: str) -> list[str]:
    return [args for name, args in instructions(path) if name == instruction]


def pip_requirements(run_line: str) -> list[tuple[Requirement, bool]]:
    """Each requirement a RUN line pip-installs, and whether it went in with --no-deps."""
    found: list[tuple[Requirement, bool]] = []
    for command in re.split(r"&&|;", run_line):
        words = shlex.split(command)
        if words[:2] != ["pip", "install"]:
            continue
        no_deps = "--no-deps" in words
        after_option = False
        for word in words[2:]:
            if word in ("-c", "--constraint", "-r", "--requirement"):
                after_option = True  # its argument is a file, not a requirement
            elif after_option:
                after_option = False
            elif not word.startswith("-") and word != ".":
                found.append((Requirement(word), no_deps))
    return found


def pip_installs(path: Path) -> list[list[str]]:
    """The words of every `pip install` a Dockerfile runs."""
    return [
        words
        for line in values(path, "RUN")
        for command in re.split(r"&&|;", line)
        if (words := shlex.split(command))[:2] == ["pip", "install"]
    ]


def installed_closure(roots: list[tuple[Requirement, bool]]) -> set[str]:
    """Canonical names of what pip installs for `roots`, as this venv's metadata says."""
    environment = default_environment()
    seen: set[str] = set()
    todo = [(canonicalize_name(req.name), not no_deps) for req, no_deps in roots]
    while todo:
        name, follow = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if not follow:
            continue
        lookup = {v: k for k, v in SAME_MODULES.items()}.get(name, name)
        try:
            requires = importlib.metadata.requires(lookup) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for text in requires:
            requirement = Requirement(text)
            if requirement.marker and not requirement.marker.evaluate({**environment, "extra": ""}):
                continue
            todo.append((canonicalize_name(requirement.name), True))
    return seen


def test_the_front_end_image_installs_what_the_front_end_imports_and_no_torch() -> None:
    dockerfile = DEPLOY / "Dockerfile.frontend"
    (base,) = values(dockerfile, "FROM")
    assert base == "python:3.11-slim"
    requirements = [r for line in values(dockerfile, "RUN") for r in pip_requirements(line)]
    listed = {canonicalize_name(req.name) for req, _ in requirements}
    assert not listed & WORKER_ONLY
    installed = installed_closure(requirements)
    assert not installed & WORKER_ONLY, "a front end dependency pulls in torch"

    probe = subprocess.run(
        [sys.executable, "-c", FRONT_END_PROBE + "assert 'torch' not in sys.modules"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr
    imported = {canonicalize_name(name) for name in json.loads(probe.stdout)}
    imported = {SAME_MODULES.get(name, name) for name in imported} - {"stylebot"} - OPTIONAL_HERE
    assert imported, "the probe saw no third-party imports"
    missing = imported - installed
    assert not missing, f"the front end imports {missing}, which its image does not install"


def test_the_front_end_image_lists_pyproject_versions() -> None:
    """A bound in the Dockerfile must not be looser than pyproject's for the same package."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    bounds = {
        canonicalize_name(Requirement(d).name): Requirement(d) for d in project["dependencies"]
    }
    for line in values(DEPLOY / "Dockerfile.frontend", "RUN"):
        for requirement, _ in pip_requirements(line):
            name = canonicalize_name(requirement.name)
            if name in bounds and bounds[name].specifier != SpecifierSet():
                assert requirement.specifier == bounds[name].specifier, name


def test_the_worker_image_builds_on_cuda_and_keeps_its_torch() -> None:
    dockerfile = DEPLOY / "Dockerfile.worker"
    args = dict(arg.split("=", 1) for arg in values(dockerfile, "ARG") if "=" in arg)
    assert "cuda" in args["BASE_IMAGE"]
    assert values(dockerfile, "FROM") == ["${BASE_IMAGE}"]
    assert args["TORCH_SPEC"] == '""', "the CUDA base's torch must not be replaced by default"
    runs = " ".join(values(dockerfile, "RUN"))
    assert "pip install -c constraints.txt ." in runs
    assert "libgl1" in runs  # OpenCV's import needs it
    # The compose file keeps the model cache in a volume at HF_HOME.
    env = " ".join(values(dockerfile, "ENV"))
    hf_home = re.search(r"HF_HOME=(\S+)", env)
    assert hf_home is not None
    worker_volumes = load(COMPOSE)["services"]["worker"]["volumes"]
    assert any(volume.endswith(":" + hf_home.group(1)) for volume in worker_volumes)


@pytest.mark.parametrize(
    ("name", "command"),
    [("Dockerfile.frontend", ["stylebot", "run"]), ("Dockerfile.worker", ["stylebot", "worker"])],
)
def test_images_run_stylebot_as_a_user_and_stop_on_sigterm(name: str, command: list[str]) -> None:
    dockerfile = DEPLOY / name
    (cmd,) = values(dockerfile, "CMD")
    assert json.loads(cmd) == command
    (user,) = values(dockerfile, "USER")
    assert user not in ("root", "0")
    assert values(dockerfile, "STOPSIGNAL") == ["SIGTERM"]
    assert "STYLEBOT_DATA_DIR=/data" in " ".join(values(dockerfile, "ENV"))
    copied = [args.split()[0] for args in values(dockerfile, "COPY")]
    for source in copied:
        assert (REPO / source).exists(), f"{name} copies {source}, which is not in the repo"


@pytest.mark.parametrize("name", ["Dockerfile.frontend", "Dockerfile.worker"])
def test_images_install_the_locked_versions(name: str) -> None:
    """Every pip install but the worker's optional torch takes requirements.lock's pins
    (as lock_constraints.py writes them), so an image built later gets what the suite
    passed with."""
    dockerfile = DEPLOY / name
    runs = " ".join(values(dockerfile, "RUN"))
    assert "python lock_constraints.py requirements.lock > constraints.txt" in runs
    copied = " ".join(values(dockerfile, "COPY"))
    assert "requirements.lock" in copied
    assert "deploy/lock_constraints.py" in copied
    for words in pip_installs(dockerfile):
        if "$TORCH_SPEC" in words:
            continue  # the operator's chosen torch, from its own index
        assert words[words.index("-c") + 1] == "constraints.txt", words


def test_lock_constraints_leave_out_what_the_base_image_has(tmp_path: Path) -> None:
    """Run as the image runs it: the pins of packages installed here (Pillow, this
    venv's) are left to the base; one that is not installed is kept."""
    lock = tmp_path / "requirements.lock"
    lock.write_text("# a comment\nPillow==1.0\nnot-installed-anywhere==2.3\n\n")
    printed = subprocess.run(
        [sys.executable, str(DEPLOY / "lock_constraints.py"), str(lock)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert printed.stdout.split() == ["not-installed-anywhere==2.3"]

"""The wheel a user installs (`pipx install .`, `uv tool install .`): built from a copy of the sources, installed
into a fresh virtual environment, and used from there with nothing of this checkout on the path.

The dependencies come from a wheelhouse that pip resolved from pyproject.toml and that later runs reuse
(`scripts/container-image.sh wheels`; the container image is built from the same one), so the install needs no
network and takes seconds.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]
SOURCES = ["pyproject.toml", "README.md", "LICENSE", "argobox"]
"""What a build reads: the wheel must build from these alone."""
TIMEOUT_S = 300


@dataclass(frozen=True)
class Built:
    wheel: Path
    log: str


@dataclass(frozen=True)
class Installed:
    venv: Path
    home: Path

    @property
    def argobox(self) -> str:
        return str(self.venv / "bin" / "argobox")

    def env(self, **extra: str) -> dict[str, str]:
        """A user's shell environment: nothing of this checkout or its venv, the new environment's bin on PATH."""
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "ARGOBOX_"))}
        return {**clean, "PATH": f"{self.venv / 'bin'}{os.pathsep}/usr/bin:/bin", **extra}

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """Run the installed `argobox` from a directory of its own, as a user would."""
        return subprocess.run(
            [self.argobox, *args], capture_output=True, text=True, timeout=TIMEOUT_S, cwd=self.home,
            env=self.env(**env), check=False,
        )  # fmt: skip


def _ignore_caches(_: str, names: list[str]) -> list[str]:
    return [n for n in names if n == "__pycache__" or n.endswith((".pyc", ".egg-info"))]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """`pip wheel` of a copy of the sources (an in-place build would leave build/ and *.egg-info in the checkout)."""
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=_ignore_caches)
        else:
            shutil.copy(REPO / name, src / name)
    dist = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--verbose", "--wheel-dir", str(dist), str(src)],
        capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    (wheel,) = dist.glob("argobox-*.whl")
    return Built(wheel=wheel, log=done.stdout + done.stderr)


@pytest.fixture(scope="module")
def wheelhouse() -> Path:
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "container-image.sh"), "wheels"],
        capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    (assignment,) = [w for w in shlex.split(done.stdout) if w.startswith("ARGOBOX_WHEELHOUSE=")]
    return Path(assignment.partition("=")[2])


@pytest.fixture(scope="module")
def installed(built: Built, wheelhouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """A new virtual environment with the wheel and its dependencies installed, nothing else."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=TIMEOUT_S)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--no-index",
         "--find-links", str(wheelhouse), str(built.wheel)],
        capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return Installed(venv=venv, home=tmp_path_factory.mktemp("home"))


def test_the_wheel_builds_without_a_deprecation_warning_and_ships_the_license(built: Built) -> None:
    with zipfile.ZipFile(built.wheel) as wheel:
        names = wheel.namelist()
        metadata = wheel.read(f"argobox-{VERSION}.dist-info/METADATA").decode()
        license_text = wheel.read(f"argobox-{VERSION}.dist-info/licenses/LICENSE")
        entry_points = wheel.read(f"argobox-{VERSION}.dist-info/entry_points.txt").decode()

    assert built.wheel.name == f"argobox-{VERSION}-py3-none-any.whl"
    assert not re.search(r"deprecat", built.log, re.IGNORECASE), built.log[-4000:]
    assert "License-Expression: Apache-2.0" in metadata.splitlines()
    assert license_text == (REPO / "LICENSE").read_bytes()
    assert "argobox = argobox.server.cli:main" in entry_points
    assert {n.split("/")[0] for n in names} == {"argobox", f"argobox-{VERSION}.dist-info"}


def test_the_installed_command_runs_from_the_new_environment(installed: Installed) -> None:
    helped = installed.run("--help")
    version = installed.run("--version")
    where = subprocess.run(
        [str(installed.venv / "bin" / "python"), "-c", "import argobox; print(argobox.__file__)"],
        capture_output=True, text=True, timeout=60, cwd=installed.home, check=True,
    )  # fmt: skip

    assert helped.returncode == 0, helped.stderr
    for command in ("serve", "token", "requests", "approve", "deny", "audit", "demo"):
        assert re.search(rf"\b{command}\b", helped.stdout), command
    assert (version.returncode, version.stdout.strip()) == (0, f"argobox {VERSION}")
    assert Path(where.stdout.strip()).is_relative_to(installed.venv)


async def list_tools_over_stdio(installed: Installed, config: Path, token: str) -> list[str]:
    """What an agent's MCP client sees when it starts the installed `argobox serve` (the official client)."""
    params = StdioServerParameters(
        command=installed.argobox, args=["--config", str(config), "serve", "--agent", "openclaw"],
        env=installed.env(ARGOBOX_AGENT_TOKEN=token), cwd=installed.home,
    )  # fmt: skip
    with anyio.fail_after(120):
        async with Client(params) as client:
            return [tool.name for tool in (await client.list_tools()).tools]


@pytest.mark.anyio
@pytest.mark.docker
async def test_first_use_init_doctor_and_an_agent_connected_over_stdio(
    installed: Installed, docker_base_url: str
) -> None:
    etc, data = installed.home / "etc", installed.home / "data"
    init = installed.run("init", "--dir", str(etc), "--data-dir", str(data), "--docker", docker_base_url)
    config = etc / "argobox.toml"
    tokens = dict(re.findall(r"^(operator|agent) token \(\S+\): (\S+)$", init.stdout, re.MULTILINE))
    doctor = installed.run("--config", str(config), "doctor", "--json")
    tools = await list_tools_over_stdio(installed, config, tokens.get("agent", ""))
    requests = installed.run("requests", ARGOBOX_CONFIG=str(config))
    verified = installed.run("--config", str(config), "audit", "verify")

    assert init.returncode == 0, init.stderr
    assert set(tokens) == {"operator", "agent"} and tokens["agent"] not in config.read_text()
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    findings = json.loads(doctor.stdout)["findings"]
    assert [f for f in findings if f["severity"] == "error"] == []
    assert any(f["check"] == "docker" and f["severity"] == "ok" for f in findings)
    assert "docker_list_containers" in tools and "docker_restart_container" in tools
    assert (requests.returncode, requests.stdout.strip()) == (0, "no requests"), requests.stderr
    assert (data / "argobox.db").stat().st_mode & 0o777 == 0o600
    assert verified.returncode == 0, verified.stdout + verified.stderr

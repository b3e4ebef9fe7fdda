"""`argobox demo`: the first proof, live, against the simulated lab."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.server.cli.support import ARGOBOX


def test_demo_shows_the_first_proof_holding(tmp_path: Path) -> None:
    result = subprocess.run(
        [ARGOBOX, "demo", "--dir", str(tmp_path)], capture_output=True, text=True, timeout=180, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "pending_approval" in result.stdout
    assert "succeeded: restart container 'jellyfin'" in result.stdout
    assert "the first proof held" in result.stdout
    lab = json.loads((tmp_path / "lab.json").read_text())
    assert lab["jellyfin"]["restart_count"] == 1
    assert lab["postgres"]["restart_count"] == 0
    assert "the Home Assistant gate held" in result.stdout
    assert "lock.front_door: locked → unlock" in result.stdout
    home = json.loads((tmp_path / "home.json").read_text())
    assert home["light.living_room_lamp"]["state"] == "on"
    assert home["light.kitchen"]["state"] == "on"  # turning it off was denied
    assert home["lock.front_door"]["state"] == "unlocked"

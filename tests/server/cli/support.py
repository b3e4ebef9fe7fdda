"""Running the real `argobox` command in its own process, as an operator does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ARGOBOX = str(Path(sys.executable).with_name("argobox"))


def argobox(
    config: Path | None, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`argobox --config CONFIG ARGS...` (no --config when `config` is None), run in the config's folder."""
    prefix = ["--config", str(config)] if config is not None else []
    return subprocess.run(
        [ARGOBOX, *prefix, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=config.parent if config is not None else None,
        env=env,
    )


def without_operator_token() -> dict[str, str]:
    """This process's environment without ARGOBOX_OPERATOR_TOKEN."""
    return {k: v for k, v in os.environ.items() if k != "ARGOBOX_OPERATOR_TOKEN"}

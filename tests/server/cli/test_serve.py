"""`argobox serve`: the identity of a stdio server is fixed at launch, and a wrong one is refused and audited."""

from __future__ import annotations

import hashlib
import json
import subprocess

from tests.conftest import WriteConfig
from tests.server.cli.support import ARGOBOX, argobox


def test_serve_refuses_unknown_agents_and_wrong_tokens_and_audits_it(write_config: WriteConfig) -> None:
    token = "correct-horse-battery-staple-0123456789"
    config = write_config(token_sha256=hashlib.sha256(token.encode()).hexdigest())
    base_env = {"PATH": "/usr/bin:/bin", "HOME": str(config.parent)}

    def serve(agent: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [ARGOBOX, "--config", str(config), "serve", "--agent", agent],
            input="",
            capture_output=True,
            text=True,
            timeout=60,
            env={**base_env, **env},
            check=False,
        )

    unknown = serve("mallory", {})
    missing = serve("openclaw", {})
    wrong = serve("openclaw", {"ARGOBOX_AGENT_TOKEN": "not-the-token-at-all"})
    right = serve("openclaw", {"ARGOBOX_AGENT_TOKEN": token})
    audit = json.loads(argobox(config, "audit", "--json").stdout)

    assert unknown.returncode == 1 and "unknown agent 'mallory'" in unknown.stderr
    assert missing.returncode == 1 and "requires a token" in missing.stderr
    assert wrong.returncode == 1 and "does not match" in wrong.stderr
    assert right.returncode == 0, right.stderr
    assert [e["event"] for e in audit].count("agent_refused") == 3
    assert token not in json.dumps(audit) and "not-the-token-at-all" not in json.dumps(audit)


def test_serve_needs_exactly_one_of_agent_and_http(write_config: WriteConfig) -> None:
    config = write_config()

    neither = argobox(config, "serve")
    both = argobox(config, "serve", "--agent", "openclaw", "--http")

    assert neither.returncode == 2 and "serve needs --agent NAME (stdio) or --http" in neither.stderr
    assert both.returncode == 2 and "drop --agent" in both.stderr

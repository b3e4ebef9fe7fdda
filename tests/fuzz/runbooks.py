"""Runbooks and a second Docker host in the fuzzer's lab, and how the fuzzer draws the values a runbook accepts.

The lab's runbooks run on the built-in `local` host (no SSH: a local command costs a process, not a handshake): one
echoes what the agent sends, one prints the last lines of a report that holds secrets ArgoBox knows or can tell by
their spelling, and one (a change, so it needs approval) would leave a mark file behind, with a preview that prints
the report to the operator. The second Docker host, `down`, never answers (nothing listens on its port), so every
container tool meets a host that fails as well as the one that works.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from hypothesis import strategies as st

from argobox.server.config.hosts import ParamConfig

RUNBOOKS_CONFIG = """
[docker.hosts.down]
base_url = "ssh://fuzz@127.0.0.1:1"
known_hosts = "{known_hosts}"
timeout_seconds = 2

[runbooks.echo]
description = "Print a text"
argv = ["echo", "{{text}}"]
params = {{ text = {{ pattern = "^.*$", max_length = 1024 }} }}
kind = "read"
timeout_seconds = 10

[runbooks.report]
description = "The last lines of the backup report"
argv = ["tail", "-n", "{{lines}}", "{report}"]
params = {{ lines = {{ type = "integer", min = 1, max = 1000, default = 10 }} }}
kind = "read"
timeout_seconds = 10

[runbooks.mark]
description = "Mark a job as done"
argv = ["touch", "{marks}/done-{{name}}-{{mode}}"]
params = {{ name = {{ pattern = "^[a-z][a-z0-9-]{{0,31}}$" }}, mode = {{ choices = ["fast", "full"] }} }}
kind = "mutate"
preview_argv = ["cat", "{report}"]
timeout_seconds = 10
"""
"""Formatted with the lab's paths: the empty known_hosts of `down`, the report file and the folder of marks."""

RUNBOOK_RULES = """
[[agents.openclaw.rules]]
tools = ["runbook_echo", "runbook_report"]
effect = "allow"

[[agents.openclaw.rules]]
tools = ["runbook_mark"]
effect = "approve"

[[agents.openclaw.rules]]
tools = ["runbook_mark"]
args = {{ name = ["vault"] }}
effect = "deny"

[[agents.openclaw.rules]]
tools = ["docker_restart_container"]
args = {{ host = ["down"] }}
effect = "deny"
"""
"""The echo and the report are allowed; a mark needs approval (one name is denied); no restart on `down`."""

DOCKER_HOSTS = ("default", "down", "nas")
"""Docker host names an agent may send: the main engine, the silent one, and one that is not configured."""


def write_runbook_files(directory: Path, ha_token: str) -> tuple[str, dict[str, str]]:
    """Write the report (with secrets in it: the configured Home Assistant token, and values known by their
    spelling) and make the empty known_hosts and the marks folder. The config's sections, and the report's secrets by
    what they are."""
    report, known_hosts, marks = directory / "report.txt", directory / "known_hosts", directory / "marks"
    marks.mkdir()
    known_hosts.write_text("")
    url_password, apikey, password = secrets.token_urlsafe(18), secrets.token_hex(16), secrets.token_hex(16)
    report.write_text(
        "backup finished\n"
        f"repository https://backup:{url_password}@127.0.0.1/repo\n"
        f"upload apikey={apikey}\n"
        f"login password={password}\n"
        f"ha: {ha_token}\n"
        "done\n"
    )
    sections = RUNBOOKS_CONFIG.format(known_hosts=known_hosts, report=report, marks=marks)
    seeded = {"the report's URL password": url_password, "the report's apikey": apikey}
    return sections + RUNBOOK_RULES.format(), {**seeded, "the report's password": password}


def param_values(param: ParamConfig) -> st.SearchStrategy[object]:
    """Values `param` accepts (the hostile ones are drawn beside them, as for every other argument)."""
    if param.choices is not None:
        return st.sampled_from(param.choices)
    if param.type == "integer":
        return st.integers(param.lower, param.max if param.max is not None else param.lower + 10**6)
    letters = st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"])
    drawn = st.from_regex(param.pattern or ".*", fullmatch=True, alphabet=letters)
    return drawn.filter(lambda value: param.problem(value) is None)

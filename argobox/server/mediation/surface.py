"""The honest surface report: per agent, what it can reach, what of it changes things, and what runs unapproved.

"ArgoBox should be honest about unsupported or not-yet-hardened surfaces" (the founding document): so the report
also says, for each backend and channel configured, how far it is tested and what it does not promise.
"""

from __future__ import annotations

import shlex
from typing import Any

from argobox.policy.catalog import BUILTIN_TOOLS, DEFAULT_DOCKER_HOST, Backend, Classification
from argobox.policy.decide import Effect, rules_naming
from argobox.server.config.hosts import tool_name
from argobox.server.config.model import Config

MATURITY: dict[Backend, str] = {
    Backend.DOCKER: (
        "tested against Docker Engine 20.10 (API 1.41); start, stop and restart by exact name only; no exec, no "
        "image, volume or network changes. The process serving the agent needs the Docker socket, which is "
        "root-equivalent: run the HTTP daemon as its own user rather than giving the agent's user the socket"
    ),
    Backend.HOMEASSISTANT: (
        "tested against Home Assistant 2024.3; service calls on named entities only; services in sensitive "
        "domains (locks, alarms, covers, scripts, automations, ...) can be pre-approved only for exact entity ids; "
        "a service call is made once and never retried"
    ),
    Backend.RUNBOOKS: (
        "tested against OpenSSH 9.2 and the local machine; only the declared argv runs, each parameter one word "
        "(never a shell line); SSH host keys must be in the configured known_hosts; output is bounded and a "
        "timed-out command is killed. What a runbook may do on its host is up to the command and the SSH user: "
        "give ArgoBox a restricted user"
    ),
}

HTTP_LISTENER = (
    "argobox serve --http binds to loopback; beyond it (--allow-non-loopback) it speaks plain HTTP, so agents' bearer "
    "tokens and results cross the network in clear text unless a TLS-terminating proxy is in front"
)
CONSOLE_LISTENER = "the web console at {listen}; {how}"


def agent_surface(config: Config, agent: str) -> dict[str, Any]:
    """What `agent` sees and may do, by tool: its classification and the rules that decide it."""
    grant = config.grant(agent)
    tools = sorted(grant.visible - BUILTIN_TOOLS)
    mutations = [t for t in tools if config.catalog[t].classification is Classification.MUTATE]
    unapproved: list[dict[str, Any]] = []
    for tool in mutations:
        for ref, rule in rules_naming(grant, tool):
            if rule.effect is Effect.ALLOW:
                targets = {name: list(globs) for name, globs in rule.args.items()}
                unapproved.append({"tool": tool, "rule": ref, "only_for": targets})
    return {
        "agent": agent,
        "has_token": config.agents[agent].token_sha256 is not None,
        "tools": tools,
        "mutations": mutations,
        "mutations_without_approval": unapproved,
    }


def surface(config: Config) -> dict[str, Any]:
    """Every agent's surface, and what each configured backend promises."""
    return {
        "agents": [agent_surface(config, agent) for agent in sorted(config.agents)],
        "backends": {backend.value: MATURITY[backend] for backend in sorted(config.backends)},
        "docker_hosts": [DEFAULT_DOCKER_HOST, *sorted(config.docker.hosts)],
        "runbooks": {
            tool_name(name): f"{runbook.kind} on host {runbook.host}: {shlex.join(runbook.argv)}"
            for name, runbook in sorted(config.runbooks.items())
        },
        "listeners": _listeners(config),
    }


def _listeners(config: Config) -> dict[str, str]:
    """What each network listener is and what it needs beyond loopback (the stdio server has none)."""
    listeners = {"http": HTTP_LISTENER}
    if config.console is not None:
        url = config.console.public_url
        how = f"operators reach it at {url}" if url else "no public_url: beyond loopback it needs a TLS proxy"
        listeners["console"] = CONSOLE_LISTENER.format(listen=config.console.listen, how=how)
    return listeners


def surface_lines(report: dict[str, Any]) -> list[str]:
    """The surface report as lines of text."""
    lines: list[str] = []
    for entry in report["agents"]:
        lines.append(
            f"agent {entry['agent']}: {len(entry['tools'])} tools, {len(entry['mutations'])} of them change things"
            + ("" if entry["has_token"] else " (no token: stdio only, anyone who can start it is this agent)")
        )
        if entry["mutations"]:
            lines.append("  changes: " + ", ".join(entry["mutations"]))
        for allowed in entry["mutations_without_approval"]:
            only = "; ".join(f"{k} in {v}" for k, v in allowed["only_for"].items()) or "any target"
            lines.append(f"  runs WITHOUT approval: {allowed['tool']} by {allowed['rule']} ({only})")
        if entry["mutations"] and not entry["mutations_without_approval"]:
            lines.append("  every change waits for an operator's approval")
    listeners: dict[str, str] = report.get("listeners") or {}
    if listeners:
        lines.append("listeners:")
        lines += [f"  {name}: {what}" for name, what in listeners.items()]
    for backend, promise in report["backends"].items():
        lines.append(f"{backend}: {promise}")
        if backend == Backend.DOCKER and len(report["docker_hosts"]) > 1:
            lines.append("  hosts: " + ", ".join(report["docker_hosts"]))
        if backend == Backend.RUNBOOKS:
            lines += [f"  {tool}: {what}" for tool, what in report["runbooks"].items()]
    return lines

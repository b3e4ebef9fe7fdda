"""[hosts], [runbooks] and [docker.hosts]: every configuration error names the runbook (or host) and the key; the
runbook tools' schemas come from their params; the rule on mutating tools holds for runbooks."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from argobox.policy.catalog import Classification, ToolClass, describe_call
from argobox.policy.decide import Effect, decide
from argobox.server.config.hosts import fill
from argobox.server.config.model import Config, ConfigError, parse_config
from argobox.server.mediation.runbooks import runbook_spec, tool_spec

SOURCE = Path("/etc/argobox/argobox.toml")
NAS = {"ssh": "argobox@nas.lan:2222", "known_hosts": "known_hosts", "key_file": "id_ed25519"}
SCRUB: dict[str, Any] = {
    "description": "Start a scrub of a ZFS pool",
    "host": "nas",
    "argv": ["zpool", "scrub", "{pool}"],
    "params": {"pool": {"pattern": "^[a-z][a-z0-9_-]{0,31}$"}},
    "preview_argv": ["zpool", "status", "{pool}"],
    "timeout_seconds": 600,
    "output_limit_kib": 256,
}


def config(runbooks: dict[str, Any] | None = None, rules: list[dict[str, Any]] | None = None, **extra: Any) -> Config:
    data: dict[str, Any] = {
        "docker": {"simulated_lab": "lab.json"},
        "hosts": {"nas": NAS},
        "runbooks": runbooks if runbooks is not None else {"zfs_scrub": SCRUB},
        "agents": {"openclaw": {"rules": rules or []}},
        **extra,
    }
    return parse_config(data, SOURCE)


def error_of(**kwargs: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        config(**kwargs)
    return str(caught.value)


def test_the_issue_example_loads_with_paths_relative_to_the_file() -> None:
    loaded = config()

    assert loaded.hosts["nas"].target == ("argobox", "nas.lan", 2222)
    assert loaded.hosts["nas"].known_hosts == Path("/etc/argobox/known_hosts")
    assert loaded.runbooks["zfs_scrub"].kind == "mutate"  # the default
    assert loaded.catalog["runbook_zfs_scrub"].classification is Classification.MUTATE
    assert loaded.catalog["runbook_zfs_scrub"].target_args == ("pool",)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            {"host": "backup"},
            "runbooks.zfs_scrub.host: unknown host 'backup' (configured: local, nas)",
            id="unknown-host",
        ),
        pytest.param(
            {
                "argv": ["zpool", "scrub", "{pol}"],
                "params": {"pol": {"pattern": "^a$"}},
                "preview_argv": ["zpool", "status", "{pool}"],
            },
            "runbooks.zfs_scrub: preview_argv[2]: placeholder {pool} has no param",
            id="preview-placeholder",
        ),
        pytest.param(
            {"argv": ["zpool", "scrub", "{name}"]},
            "runbooks.zfs_scrub: argv[2]: placeholder {name} has no param",
            id="placeholder-without-param",
        ),
        pytest.param(
            {"params": {"pool": {"pattern": "^a$"}, "extra": {"choices": ["x"]}}},
            "runbooks.zfs_scrub: params.extra: never used in argv",
            id="param-never-used",
        ),
        pytest.param(
            {"params": {"pool": {"pattern": "^[a-z"}}},
            "runbooks.zfs_scrub.params.pool.pattern: '^[a-z' does not compile",
            id="pattern-does-not-compile",
        ),
        pytest.param(
            {"argv": ["{pool}", "scrub"]},
            "runbooks.zfs_scrub: argv[0]: the program must be fixed",
            id="program-placeholder",
        ),
        pytest.param(
            {"params": {"pool": {}}},
            "runbooks.zfs_scrub.params.pool: a string parameter needs a pattern",
            id="unconstrained-string",
        ),
        pytest.param(
            {"params": {"pool": {"type": "integer", "min": -5}}},
            "runbooks.zfs_scrub.params.pool: min is negative",
            id="negative-integer",
        ),
        pytest.param(
            {"params": {"pool": {"pattern": "^[a-z]+$", "default": "-x"}}},
            "runbooks.zfs_scrub.params.pool: default '-x' must not start with '-'",
            id="bad-default",
        ),
        pytest.param(
            {"params": {"schema": {"choices": ["a"]}}, "argv": ["x", "{schema}"]},
            "runbooks.zfs_scrub.params: 'schema' is a reserved name",
            id="reserved-param-name",
        ),
        pytest.param({"kind": "delete"}, "runbooks.zfs_scrub.kind:", id="bad-kind"),
        pytest.param({"shell": True}, "runbooks.zfs_scrub.shell: unknown key", id="unknown-key"),
    ],
)
def test_runbook_errors_name_the_runbook_and_the_key(change: dict[str, Any], expected: str) -> None:
    assert expected in error_of(runbooks={"zfs_scrub": {**SCRUB, **change}})


@pytest.mark.parametrize("name", ["Scrub", "zfs scrub", "x" * 57, "1scrub", "scrub.now"])
def test_a_runbook_name_that_cannot_be_a_tool_name_is_refused(name: str) -> None:
    message = error_of(runbooks={name: SCRUB})

    assert f"runbooks.{name} (the name): {name[:64]!r} is not a valid runbook name" in message


@pytest.mark.parametrize(
    ("hosts", "expected"),
    [
        ({"local": NAS}, "hosts.local: 'local' is built in"),
        ({"nas": {**NAS, "ssh": "nas.lan"}}, "hosts.nas.ssh: 'nas.lan' is not user@host[:port]"),
        ({"nas": {"ssh": "a@b"}}, "hosts.nas.known_hosts: missing: this key is required here"),
    ],
)
def test_host_errors_name_the_host_and_the_key(hosts: dict[str, Any], expected: str) -> None:
    assert expected in error_of(hosts=hosts)


@pytest.mark.parametrize(
    ("docker_hosts", "expected"),
    [
        ({"default": {"base_url": "ssh://a@b"}}, "docker.hosts.default: 'default' is the engine of [docker] base_url"),
        ({"nas": {"base_url": "tcp://nas:2376"}}, "docker.hosts.nas: a tcp:// engine needs tls"),
        (
            {"nas": {"base_url": "ssh://a@nas", "tls": {"ca": "a", "cert": "b", "key": "c"}}},
            "docker.hosts.nas: tls applies to tcp:// engines",
        ),
        ({"nas": {"base_url": "http://nas:2375"}}, "docker.hosts.nas.base_url: 'http://nas:2375' must be ssh://"),
        ({"nas": {"base_url": "ssh://a:pw@nas"}}, "docker.hosts.nas.base_url: must not carry a password"),
    ],
)
def test_docker_host_errors_name_the_host_and_the_key(docker_hosts: dict[str, Any], expected: str) -> None:
    assert expected in error_of(docker={"simulated_lab": "lab.json", "hosts": docker_hosts})


def test_a_mutate_runbook_is_pre_approved_only_by_a_rule_that_constrains_its_params() -> None:
    blanket = error_of(rules=[{"tools": ["runbook_*"], "effect": "allow"}])
    constrained = config(rules=[{"tools": ["runbook_zfs_scrub"], "args": {"pool": ["tank"]}, "effect": "allow"}])
    grant = constrained.grant("openclaw")

    assert "would let the mutating tool runbook_zfs_scrub run without approval on any target; constrain pool" in blanket
    assert decide(grant, "runbook_zfs_scrub", {"pool": "tank"}).effect is Effect.ALLOW
    assert decide(grant, "runbook_zfs_scrub", {"pool": "backup"}).effect is Effect.DENY


def test_a_runbook_without_params_is_pre_approved_only_by_its_exact_name() -> None:
    reboot = {"description": "Reboot the NAS", "host": "nas", "argv": ["systemctl", "reboot"]}

    globbed = error_of(runbooks={"reboot": reboot}, rules=[{"tools": ["runbook_*"], "effect": "allow"}])
    exact = config(runbooks={"reboot": reboot}, rules=[{"tools": ["runbook_reboot"], "effect": "allow"}])

    assert "would pre-approve the mutating tool runbook_reboot through a glob" in globbed
    assert decide(exact.grant("openclaw"), "runbook_reboot", {}).effect is Effect.ALLOW


def test_a_read_runbook_may_be_allowed_and_a_grant_sees_only_the_runbooks_it_names() -> None:
    status = {"description": "Pool status", "host": "nas", "argv": ["zpool", "status"], "kind": "read"}
    loaded = config(
        runbooks={"zfs_scrub": SCRUB, "zfs_status": status},
        rules=[{"tools": ["runbook_zfs_status"], "effect": "allow"}],
    )
    grant = loaded.grant("openclaw")

    assert decide(grant, "runbook_zfs_status", {}).effect is Effect.ALLOW
    assert "runbook_zfs_status" in grant.visible and "runbook_zfs_scrub" not in grant.visible


def test_a_rule_naming_a_runbook_that_is_not_configured_is_an_error() -> None:
    assert "'runbook_nope' matches no known tool" in error_of(rules=[{"tools": ["runbook_nope"], "effect": "approve"}])


def test_the_input_schema_comes_from_the_params() -> None:
    runbook = config(
        runbooks={
            "vm_reboot": {
                "description": "Reboot a Proxmox VM",
                "host": "nas",
                "argv": ["qm", "reboot", "{vmid}", "--timeout={wait}", "--mode={mode}"],
                "params": {
                    "vmid": {"type": "integer", "min": 100, "max": 999, "description": "The VM id"},
                    "wait": {"type": "integer", "min": 1, "max": 600, "default": 60},
                    "mode": {"choices": ["soft", "hard"], "default": "soft"},
                },
            }
        },
        rules=[],
    ).runbooks["vm_reboot"]

    tool = runbook_spec("vm_reboot", runbook).mcp_tool()
    schema = tool.input_schema

    assert tool.name == "runbook_vm_reboot" and tool.description is not None
    assert tool.description.startswith("Reboot a Proxmox VM")
    assert schema["required"] == ["vmid"]
    assert schema["properties"]["vmid"] == {
        "description": "The VM id",
        "maximum": 999,
        "minimum": 100,
        "title": "Vmid",
        "type": "integer",
    }
    assert schema["properties"]["wait"]["default"] == 60
    assert schema["properties"]["mode"]["enum"] == ["soft", "hard"]
    assert schema["additionalProperties"] is False
    assert tool.annotations is not None and tool.annotations.read_only_hint is False


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("tank; reboot", "must match"),
        ("-rf", "must not start with '-'"),
        ("tank\nreboot", "must not contain control characters"),
        ("tank\0", "must not contain control characters"),
        ("t" * 300, "at most 256 characters"),
        (5, "Input should be a valid string"),
    ],
)
def test_bad_values_are_refused_before_any_decision(value: object, problem: str) -> None:
    spec = tool_spec(config().runbooks, "runbook_zfs_scrub")
    assert spec is not None

    with pytest.raises(ValidationError, match=problem):
        spec.args.model_validate({"pool": value})


def test_the_operator_reads_the_call_as_the_command_it_runs() -> None:
    loaded = config()

    assert describe_call("runbook_zfs_scrub", {"pool": "tank"}, loaded.catalog) == (
        "run runbook zfs_scrub on host nas: zpool scrub tank"
    )


def test_each_word_of_the_command_is_shown_quoted_as_a_whole() -> None:
    shell = ToolClass(
        name="runbook_echo",
        classification=Classification.READ,
        target_args=("x",),
        description="run runbook echo on host local:",
        command=("sh", "-c", "echo {x}"),
    )

    assert describe_call("runbook_echo", {"x": "hi; id"}, {"runbook_echo": shell}) == (
        "run runbook echo on host local: sh -c 'echo hi; id'"
    )


@pytest.mark.parametrize("value", ["tank", "hi; id", "it's", "$(id)", "a\"b'c", "", "{x}", "-"])
def test_the_command_shown_is_the_argv_that_runs_as_shlex_joins_it(value: str) -> None:
    argv = ["sh", "-c", 'awk "BEGIN { print ARGV[1] }" "$1" >> /srv/log', "sh", "/srv/{x}/data", "{x}"]
    loaded = config(runbooks={"show": {"description": "Show", "argv": argv, "params": {"x": {"pattern": "^.*$"}}}})

    shown = describe_call("runbook_show", {"x": value}, loaded.catalog)

    assert shown == "run runbook show on host local: " + shlex.join(fill(argv, {"x": value}))


def test_an_integer_param_is_constrained_by_its_decimal_text() -> None:
    reboot = {
        "description": "Reboot a VM",
        "host": "nas",
        "argv": ["qm", "reboot", "{vmid}"],
        "params": {"vmid": {"type": "integer", "min": 100, "max": 999999}},
    }
    loaded = config(
        runbooks={"vm_reboot": reboot},
        rules=[{"tools": ["runbook_vm_reboot"], "args": {"vmid": ["101", "102"]}, "effect": "allow"}],
    )
    grant = loaded.grant("openclaw")

    assert decide(grant, "runbook_vm_reboot", {"vmid": 101}).effect is Effect.ALLOW
    assert decide(grant, "runbook_vm_reboot", {"vmid": 1010}).effect is Effect.DENY
    assert decide(grant, "runbook_vm_reboot", {"vmid": True}).effect is Effect.DENY

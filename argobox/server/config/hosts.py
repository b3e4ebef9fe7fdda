"""Configuration models for `[hosts.NAME]`, `[runbooks.NAME]` and `[docker.hosts.NAME]`.

A runbook is a declared command: a fixed program and argument template (`argv`) on one host, with typed parameters
the agent fills in. Everything that can be checked without the network is checked here, and every error names the
runbook (or host) and the key: an unknown host, a placeholder without a param, a param never used, a placeholder
where a program reads code (`code_words`), a pattern that does not compile, a name that cannot be a tool name.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from argobox.policy.catalog import DEFAULT_DOCKER_HOST, Backend, Classification, ToolClass, with_tools
from argobox.server.config.code_words import PLACEHOLDER, code_problems

LOCAL_HOST = "local"
"""The built-in host: the ArgoBox machine itself, where an argv runs without any shell."""
RUNBOOK_PREFIX = "runbook_"
MAX_STRING_LENGTH = 1024

FilePath = Annotated[Path, Field(strict=False)]
HostName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]
ParamName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
_SSH_TARGET = re.compile(
    r"^(?P<user>[A-Za-z0-9_][A-Za-z0-9_.-]{0,63})@(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]{1,253})"
    r"(?::(?P<port>[0-9]{1,5}))?$"
)


def _runbook_name(name: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_-]{0,55}", name):
        raise ValueError(
            f"{name[:64]!r} is not a valid runbook name: its tool is {RUNBOOK_PREFIX}NAME, so use lowercase letters, "
            "digits, '_' and '-' (at most 56), starting with a letter"
        )
    return name


RunbookName = Annotated[str, AfterValidator(_runbook_name)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def parse_ssh_target(target: str) -> tuple[str, str, int]:
    """`user@host[:port]` as (user, host, port); raises ValueError naming the expected form."""
    match = _SSH_TARGET.fullmatch(target)
    port = int(match["port"]) if match and match["port"] else 22
    if match is None or not 0 < port < 65536:
        raise ValueError(f'{target[:100]!r} is not user@host[:port], e.g. "argobox@nas.lan" or "argobox@10.0.0.5:2222"')
    return match["user"], match["host"].strip("[]"), port


class HostConfig(_Section):
    """`[hosts.NAME]`: a machine reached over SSH, whose host key must be in `known_hosts`."""

    ssh: str
    """`user@host[:port]`."""
    known_hosts: FilePath
    """The known_hosts file holding this host's key (required: a key is never trusted on first use)."""
    key_file: FilePath | None = None
    """The private key to log in with (unencrypted); without it, the keys of the SSH agent are used."""
    connect_timeout_seconds: float = Field(default=10.0, gt=0, le=120)

    @field_validator("ssh")
    @classmethod
    def _target(cls, ssh: str) -> str:
        parse_ssh_target(ssh)
        return ssh

    @property
    def target(self) -> tuple[str, str, int]:
        return parse_ssh_target(self.ssh)


class ParamConfig(_Section):
    """One parameter of a runbook: a string matching `pattern`, one of `choices`, or an integer in [min, max]."""

    type: Literal["string", "integer"] = "string"
    description: Annotated[str, StringConstraints(max_length=500)] | None = None
    pattern: str | None = None
    """A Python regular expression the whole value must match (e.g. "^[a-z][a-z0-9_-]{0,31}$")."""
    choices: list[str | int] | None = Field(default=None, min_length=1, max_length=256)
    min: int | None = None
    max: int | None = None
    max_length: int = Field(default=256, ge=1, le=MAX_STRING_LENGTH)
    default: str | int | None = None
    """Makes the param optional; the default is used (and checked) like a value the agent gave."""
    allow_leading_dash: bool = False
    """Let a value start with '-' (otherwise refused, so that no value can become an option of the command)."""

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern[:100]!r} does not compile as a regular expression: {exc}") from None
        return pattern

    @model_validator(mode="after")
    def _consistent(self) -> ParamConfig:
        if self.type == "integer":
            if self.pattern is not None:
                raise ValueError("an integer parameter takes min and max, not a pattern")
            if self.choices is not None and not all(type(c) is int for c in self.choices):
                raise ValueError("the choices of an integer parameter must be integers")
            if (self.min if self.min is not None else 0) < 0 and not self.allow_leading_dash:
                raise ValueError(
                    "min is negative, so a value could start with '-'; set allow_leading_dash = true "
                    "if the command takes negative numbers there"
                )
            if self.min is not None and self.max is not None and self.min > self.max:
                raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        else:
            if self.min is not None or self.max is not None:
                raise ValueError('min and max apply to type = "integer" only')
            if self.pattern is None and self.choices is None:
                raise ValueError(
                    "a string parameter needs a pattern or choices: an unconstrained string is not a "
                    "parameter an agent should fill in"
                )
            if self.choices is not None and not all(isinstance(c, str) for c in self.choices):
                raise ValueError('the choices of a string parameter must be strings (or set type = "integer")')
        if self.default is not None and (problem := self.problem(self.default)):
            raise ValueError(f"default {self.default!r} {problem}")
        return self

    @property
    def lower(self) -> int:
        return self.min if self.min is not None else 0

    def problem(self, value: object) -> str | None:
        """Why `value` is not acceptable for this param, or None (the check the agent's values go through too)."""
        if self.type == "integer":
            if type(value) is not int:
                return "must be an integer"
            if value < self.lower or (self.max is not None and value > self.max):
                upper = f"{self.max}" if self.max is not None else "any"
                return f"must be between {self.lower} and {upper}"
        else:
            if not isinstance(value, str):
                return "must be a string"
            if len(value) > self.max_length:
                return f"must be at most {self.max_length} characters"
            if any(ord(c) < 32 or ord(c) == 127 for c in value):
                return "must not contain control characters (newline, tab, NUL...)"
        if str(value).startswith("-") and not self.allow_leading_dash:
            return "must not start with '-'"
        if isinstance(value, str) and self.pattern is not None and re.fullmatch(self.pattern, value) is None:
            return f"must match {self.pattern}"
        if self.choices is not None and value not in self.choices:
            return "must be one of " + ", ".join(repr(c) for c in self.choices)
        return None


class RunbookConfig(_Section):
    """`[runbooks.NAME]`: the agent tool `runbook_NAME`, running `argv` (placeholders filled in) on `host`."""

    description: Annotated[str, StringConstraints(min_length=1, max_length=1000)]
    host: HostName = LOCAL_HOST
    argv: list[Annotated[str, StringConstraints(min_length=1, max_length=MAX_STRING_LENGTH)]] = Field(min_length=1)
    params: dict[ParamName, ParamConfig] = Field(default_factory=dict[str, ParamConfig])
    kind: Literal["read", "mutate"] = "mutate"
    preview_argv: list[Annotated[str, StringConstraints(min_length=1, max_length=MAX_STRING_LENGTH)]] | None = None
    """Optional, read-only: run when a call is queued, and its output shown to the operator who decides it."""
    timeout_seconds: float = Field(default=60.0, gt=0, le=24 * 3600)
    output_limit_kib: int = Field(default=64, ge=1, le=1024)
    """At most this much of stdout and of stderr is kept (each; the newest output)."""

    @field_validator("params")
    @classmethod
    def _not_reserved(cls, params: dict[str, ParamConfig]) -> dict[str, ParamConfig]:
        for name in params:
            if hasattr(BaseModel, name):
                raise ValueError(f"{name!r} is a reserved name; call the parameter something else")
        return params

    @model_validator(mode="after")
    def _placeholders(self) -> RunbookConfig:
        if PLACEHOLDER.search(self.argv[0]):
            raise ValueError("argv[0]: the program must be fixed, not a placeholder")
        if self.argv[0].startswith("-"):
            raise ValueError("argv[0]: the program cannot start with '-'")
        if self.preview_argv is not None and (
            PLACEHOLDER.search(self.preview_argv[0]) or self.preview_argv[0].startswith("-")
        ):
            raise ValueError("preview_argv[0]: the program must be fixed, not a placeholder or an option")
        for key, words in (("argv", self.argv), ("preview_argv", self.preview_argv or [])):
            for index, name in _placeholders_in(words):
                if name not in self.params:
                    raise ValueError(
                        f"{key}[{index}]: placeholder {{{name}}} has no param; add params.{name} "
                        "or write the word without braces"
                    )
        dash = {name for name, param in self.params.items() if param.allow_leading_dash}
        for key, words in (("argv", self.argv), ("preview_argv", self.preview_argv or [])):
            if problems := code_problems(key, words, dash):
                raise ValueError(problems[0])
        used = {name for _, name in _placeholders_in(self.argv)}
        for name in self.params:
            if name not in used:
                raise ValueError(f"params.{name}: never used in argv; remove it or add {{{name}}} to argv")
        return self


def _placeholders_in(words: list[str]) -> Iterator[tuple[int, str]]:
    for index, word in enumerate(words):
        for match in PLACEHOLDER.finditer(word):
            yield index, match[1]


def fill(words: list[str], values: Mapping[str, Any]) -> list[str]:
    """The argv with every placeholder replaced by its value; each word stays one word, whatever the value."""
    return [PLACEHOLDER.sub(lambda m: str(values[m[1]]), word) for word in words]


class TlsConfig(_Section):
    ca: FilePath
    cert: FilePath
    key: FilePath


class DockerHostConfig(_Section):
    """`[docker.hosts.NAME]`: another Docker engine, over `ssh://user@host[:port]` or `tcp://host:2376` with TLS."""

    base_url: str
    tls: TlsConfig | None = None
    """Client certificate and CA for tcp:// engines (mutual TLS); required for tcp://."""
    known_hosts: FilePath | None = None
    """ssh:// only: the known_hosts file with the host's key (default: the ArgoBox user's ~/.ssh/known_hosts)."""
    key_file: FilePath | None = None
    """ssh:// only: the private key (default: the ArgoBox user's SSH configuration and agent)."""
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)

    @field_validator("base_url")
    @classmethod
    def _url(cls, url: str) -> str:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise ValueError(
                f"{url[:100]!r} is not a URL; expected ssh://user@host[:port] or tcp://host:2376"
            ) from None
        if parts.scheme not in ("ssh", "tcp") or not parts.hostname or parts.path not in ("", "/"):
            raise ValueError(f"{url[:100]!r} must be ssh://user@host[:port] or tcp://host:2376")
        if parts.password:
            raise ValueError("must not carry a password; use key_file or the SSH agent")
        if parts.scheme == "tcp" and port is None:
            raise ValueError(f"{url[:100]!r} needs a port, e.g. tcp://host:2376")
        return url

    @model_validator(mode="after")
    def _scheme_options(self) -> DockerHostConfig:
        ssh = self.base_url.startswith("ssh://")
        if ssh and self.tls is not None:
            raise ValueError("tls applies to tcp:// engines; an ssh:// engine is protected by SSH")
        if not ssh and (self.known_hosts is not None or self.key_file is not None):
            raise ValueError("known_hosts and key_file apply to ssh:// engines only")
        if not ssh and self.tls is None:
            raise ValueError(
                "a tcp:// engine needs tls = { ca = ..., cert = ..., key = ... }: the Docker API in clear "
                "text would give anyone on the network control of the engine"
            )
        return self

    def resolved(self, base: Path) -> DockerHostConfig:
        """A copy with relative file paths made relative to `base` (the configuration file's folder)."""
        tls = self.tls
        if tls is not None:
            tls = tls.model_copy(
                update={name: base / getattr(tls, name).expanduser() for name in ("ca", "cert", "key")}
            )
        return self.model_copy(
            update={
                "tls": tls,
                "known_hosts": base / self.known_hosts.expanduser() if self.known_hosts is not None else None,
                "key_file": base / self.key_file.expanduser() if self.key_file is not None else None,
            }
        )


def tool_name(runbook: str) -> str:
    return RUNBOOK_PREFIX + runbook


def _escaped(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def _template(word: str) -> str:
    """One argv word as a `describe_call` template: placeholders kept, every other brace escaped."""
    parts: list[str] = []
    last = 0
    for match in PLACEHOLDER.finditer(word):
        parts += [_escaped(word[last : match.start()]), "{" + match[1] + "}"]
        last = match.end()
    parts.append(_escaped(word[last:]))
    return "".join(parts)


def runbook_class(name: str, runbook: RunbookConfig) -> ToolClass:
    """The policy's view of a runbook: its kind, and its params as the targets a pre-approving rule must name."""
    kind = Classification.READ if runbook.kind == "read" else Classification.MUTATE
    return ToolClass(
        name=tool_name(name),
        classification=kind,
        target_args=tuple(runbook.params),
        description=_escaped(f"run runbook {name} on host {runbook.host}:"),
        command=tuple(_template(word) for word in runbook.argv),
        backend=Backend.RUNBOOKS,
    )


def catalog_with_runbooks(runbooks: Mapping[str, RunbookConfig]) -> Mapping[str, ToolClass]:
    """The reviewed catalog plus one row per configured runbook."""
    return with_tools(runbook_class(name, runbook) for name, runbook in runbooks.items())


def host_problems(hosts: Mapping[str, HostConfig], runbooks: Mapping[str, RunbookConfig]) -> list[str]:
    """Problems across sections: a reserved host name, or a runbook naming a host that is not configured."""
    problems = [
        f"hosts.{LOCAL_HOST}: {LOCAL_HOST!r} is built in (the ArgoBox machine, no shell); name the SSH host "
        "something else"
        for name in hosts
        if name == LOCAL_HOST
    ]
    known = [LOCAL_HOST, *sorted(hosts)]
    for name, runbook in runbooks.items():
        if runbook.host not in known:
            problems.append(
                f"runbooks.{name}.host: unknown host {runbook.host!r} (configured: {', '.join(known)}); "
                f"add a [hosts.{runbook.host}] section or fix the name"
            )
    return problems


def docker_host_problems(hosts: Mapping[str, DockerHostConfig]) -> list[str]:
    """A Docker host may not take the name of the default engine."""
    return [
        f"docker.hosts.{DEFAULT_DOCKER_HOST}: {DEFAULT_DOCKER_HOST!r} is the engine of [docker] base_url; name this "
        "host something else"
        for name in hosts
        if name == DEFAULT_DOCKER_HOST
    ]


def resolve_hosts(hosts: Mapping[str, HostConfig], base: Path) -> dict[str, HostConfig]:
    """Hosts with their known_hosts and key_file made relative to `base` (the configuration file's folder)."""
    return {
        name: host.model_copy(
            update={
                "known_hosts": base / host.known_hosts.expanduser(),
                "key_file": base / host.key_file.expanduser() if host.key_file is not None else None,
            }
        )
        for name, host in hosts.items()
    }

"""The TOML configuration, loaded into strict pydantic models.

Unknown keys are errors, and every error names the file, the line, the key path and what was expected (for an
unknown key, the key probably meant: see `argobox.server.config.errors`). Relative paths in the file are relative to
the file itself.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from argobox.policy.catalog import Backend, ToolClass, tools_for
from argobox.policy.decide import Effect, Grant, Rule
from argobox.policy.limits import Limits
from argobox.server.audit import Signer, VerifyKey, load_signer, load_verify_key
from argobox.server.config.checks import audit_key_problems, consistency_problems
from argobox.server.config.console import ConsoleConfig
from argobox.server.config.errors import render, text_problem, validation_problems
from argobox.server.config.hosts import (
    DockerHostConfig,
    HostConfig,
    RunbookConfig,
    RunbookName,
    catalog_with_runbooks,
    docker_host_problems,
    host_problems,
    resolve_hosts,
)
from argobox.server.config.http import HttpConfig
from argobox.server.config.limits import LimitsConfig
from argobox.server.config.notifications import NotificationsConfig
from argobox.server.config.starter import SYSTEM_CONFIG_DIR, default_dirs
from argobox.server.config.urls import http_url

CONFIG_ENV = "ARGOBOX_CONFIG"
DEFAULT_CONFIG_NAME = "argobox.toml"

Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Glob = Annotated[str, StringConstraints(min_length=1, max_length=256)]
FilePath = Annotated[Path, Field(strict=False)]
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
RESERVED_ENV = frozenset({"ARGOBOX_AGENT_TOKEN", "ARGOBOX_OPERATOR_TOKEN", "ARGOBOX_CONFIG"})
"""Environment variables ArgoBox reads for itself; no backend token may be taken from them."""


class ConfigError(Exception):
    """Raised when the configuration file is missing, is not valid TOML, or does not match the schema."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class StorageConfig(_Section):
    path: FilePath = Path("argobox.db")
    busy_timeout_ms: int = Field(default=5000, ge=1, le=600_000)
    """How long a write waits for another process's lock before the call is refused (fail closed)."""


class DockerConfig(_Section):
    base_url: str = "unix:///var/run/docker.sock"
    simulated_lab: FilePath | None = None
    """When set, ArgoBox drives the simulated demo lab kept in this JSON file instead of a Docker engine."""
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    hosts: dict[Name, DockerHostConfig] = Field(default_factory=dict[str, DockerHostConfig])
    """More engines (`[docker.hosts.NAME]`); this section's own engine is the host named "default"."""


class HomeAssistantConfig(_Section):
    url: str | None = None
    """Where Home Assistant answers, e.g. http://homeassistant.local:8123 (ArgoBox adds /api)."""
    token_env: EnvName = "ARGOBOX_HA_TOKEN"  # noqa: S105 - the name of a variable, not a token
    """The environment variable holding the long-lived access token; the token itself is never in this file."""
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    simulated_home: FilePath | None = None
    """When set, ArgoBox drives the simulated demo home kept in this JSON file instead of a Home Assistant."""

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        parts = http_url(url, "http://homeassistant.local:8123")
        if parts.username or parts.password:
            raise ValueError(
                "must not carry credentials; put the access token in the environment variable named by token_env"
            )
        if parts.query or parts.fragment:
            raise ValueError(f"{url!r} must not have a query or a fragment")
        return url.rstrip("/").removesuffix("/api")

    @field_validator("token_env")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name in RESERVED_ENV:
            raise ValueError(f"{name} is ArgoBox's own variable; name another one, e.g. ARGOBOX_HA_TOKEN")
        return name

    @model_validator(mode="after")
    def _url_or_simulated(self) -> HomeAssistantConfig:
        if self.url is None and self.simulated_home is None:
            raise ValueError('url is required (e.g. url = "http://homeassistant.local:8123")')
        return self


class ApprovalsConfig(_Section):
    ttl_seconds: int = Field(default=1800, ge=10, le=30 * 24 * 3600)


class AuditConfig(_Section):
    signing_key_file: FilePath | None = None
    """Ed25519 private key (PEM, PKCS#8) that signs the audit checkpoint; used by every process that writes."""
    verify_key_file: FilePath | None = None
    """Ed25519 public key (PEM) `argobox audit verify` checks signatures with (default: from signing_key_file)."""

    def signer(self) -> Signer | None:
        """The checkpoint signing key, if configured. Raises KeyFileError."""
        return load_signer(self.signing_key_file) if self.signing_key_file is not None else None

    def verify_key(self) -> VerifyKey | None:
        """The key checkpoint signatures are verified with, if one is configured. Raises KeyFileError."""
        if self.verify_key_file is not None:
            return load_verify_key(self.verify_key_file)
        signer = self.signer()
        return signer.verify_key if signer is not None else None


class OperatorConfig(_Section):
    name: Name
    token_sha256: Sha256Hex | None = None
    role: Literal["approver", "viewer"] = "approver"
    """An approver decides requests; a viewer sees everything and decides nothing."""
    ha_user_id: str | None = None
    """The Home Assistant user whose companion app may approve and deny for this operator (from the phone)."""

    @field_validator("ha_user_id")
    @classmethod
    def _ha_user_id(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[0-9a-f]{32}", value):
            raise ValueError(
                f"{value[:64]!r} is not a Home Assistant user id (32 lowercase hex characters, shown "
                "under Settings > People > Users in advanced mode)"
            )
        return value


class RuleConfig(_Section):
    tools: list[Glob] = Field(min_length=1)
    args: dict[str, list[Glob]] = Field(default_factory=dict[str, list[str]])
    effect: Literal["allow", "approve", "deny"]


class AgentConfig(_Section):
    token_sha256: Sha256Hex | None = None
    rules: list[RuleConfig] = Field(default_factory=list[RuleConfig])
    limits: LimitsConfig = LimitsConfig()


class Config(_Section):
    storage: StorageConfig = StorageConfig()
    docker: DockerConfig = DockerConfig()
    homeassistant: HomeAssistantConfig | None = None
    """Without this section the Home Assistant tools do not exist for any agent."""
    approvals: ApprovalsConfig = ApprovalsConfig()
    audit: AuditConfig = AuditConfig()
    limits: LimitsConfig = LimitsConfig()
    notifications: NotificationsConfig = NotificationsConfig()
    http: HttpConfig = HttpConfig()
    """Limits of the HTTP daemon (`argobox serve --http`): sessions per agent, connections, slow clients."""
    operators: list[OperatorConfig] = Field(default_factory=list[OperatorConfig])
    console: ConsoleConfig | None = None
    """The web operator console; `argobox serve --http` serves it too when this section is present."""
    agents: dict[Name, AgentConfig] = Field(default_factory=dict[str, AgentConfig])
    hosts: dict[Name, HostConfig] = Field(default_factory=dict[str, HostConfig])
    """Machines reached over SSH for runbooks (`local`, the ArgoBox machine, is built in)."""
    runbooks: dict[RunbookName, RunbookConfig] = Field(default_factory=dict[str, RunbookConfig])
    """Declared commands; each is the agent tool `runbook_NAME`."""
    source: Path | None = Field(default=None, exclude=True)
    """The file this configuration was read from (not a key of the file)."""
    _grants: dict[str, Grant] = PrivateAttr(default_factory=dict[str, Grant])
    _limits: dict[str, Limits] = PrivateAttr(default_factory=dict[str, Limits])
    _catalog: Mapping[str, ToolClass] | None = PrivateAttr(default=None)

    @property
    def catalog(self) -> Mapping[str, ToolClass]:
        """The classification table in force: the reviewed catalog plus this configuration's runbooks."""
        if self._catalog is None:
            self._catalog = catalog_with_runbooks(self.runbooks)
        return self._catalog

    def grant(self, agent: str) -> Grant:
        """The policy grant of a configured agent (built once per configuration)."""
        cached = self._grants.get(agent)
        if cached is not None:
            return cached
        rules = tuple(
            Rule(
                tools=tuple(rule.tools),
                args={name: tuple(globs) for name, globs in rule.args.items()},
                effect=Effect(rule.effect),
            )
            for rule in self.agents[agent].rules
        )
        catalog = self.catalog
        self._grants[agent] = Grant(
            agent=agent, rules=rules, available=tools_for(self.backends, catalog), catalog=catalog
        )
        return self._grants[agent]

    def replacing(self, **sections: Any) -> Config:
        """A copy with these top-level sections replaced, and its grants built afresh (which tools exist depends
        on the configured backends)."""
        copy = self.model_copy(update=sections)
        copy._grants, copy._limits, copy._catalog = {}, {}, None
        return copy

    def limits_for(self, agent: str) -> Limits:
        """Built-in defaults, overridden by `[limits]`, overridden by `[agents.NAME.limits]` (built once)."""
        cached = self._limits.get(agent)
        if cached is None:
            base = self.limits.over(Limits())
            agent_config = self.agents.get(agent)
            cached = agent_config.limits.over(base) if agent_config is not None else base
            if agent_config is not None:
                self._limits[agent] = cached
        return cached

    @property
    def backends(self) -> frozenset[Backend]:
        """The backends this configuration has: Docker always, Home Assistant with a [homeassistant] section,
        runbooks with a [runbooks.NAME] section."""
        present = {Backend.HOMEASSISTANT: self.homeassistant is not None, Backend.RUNBOOKS: bool(self.runbooks)}
        return frozenset({Backend.DOCKER, *(backend for backend, configured in present.items() if configured)})

    def operator(self, name: str) -> OperatorConfig | None:
        return next((op for op in self.operators if op.name == name), None)


def resolve_config_path(explicit: str | None) -> Path:
    """`--config` if given, else `$ARGOBOX_CONFIG`, else the first file that exists of `./argobox.toml`, the one
    `argobox init` writes for this user (`~/.config/argobox/argobox.toml`, or `/etc/argobox/argobox.toml` for root)
    and `/etc/argobox/argobox.toml`."""
    chosen = explicit or os.environ.get(CONFIG_ENV)
    if chosen:
        return Path(chosen).expanduser()
    for candidate in default_config_paths():
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"no configuration: pass --config PATH, set {CONFIG_ENV}, or run `argobox init` "
        "(config.example.toml shows every key)"
    )


def default_config_paths() -> list[Path]:
    """Where a configuration is looked for when none is named, in order."""
    user_dir, _ = default_dirs(root=os.geteuid() == 0)
    found = [Path(DEFAULT_CONFIG_NAME), user_dir / DEFAULT_CONFIG_NAME, SYSTEM_CONFIG_DIR / DEFAULT_CONFIG_NAME]
    return list(dict.fromkeys(found))


def parse_config(data: dict[str, Any], source: Path, text: str | None = None) -> Config:
    """Validate already-decoded TOML `data`; relative paths are resolved against `source`'s folder. With `text`, the
    file as written, each error also names its line."""
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(render(source, validation_problems(exc, Config), text)) from None
    problems = [text_problem(p) for p in host_problems(config.hosts, config.runbooks)]
    problems += [text_problem(p) for p in docker_host_problems(config.docker.hosts)]
    if problems:  # the grants are checked next, against the runbooks' tools
        raise ConfigError(render(source, problems, text))
    problems = consistency_problems(config)
    if problems:
        raise ConfigError(render(source, problems, text))
    resolved = _with_resolved_paths(config, source)
    problems = audit_key_problems(resolved.audit)
    if problems:
        raise ConfigError(render(source, problems, text))
    return resolved


def _with_resolved_paths(config: Config, source: Path) -> Config:
    """`config` with its relative paths made relative to the folder of the file it was read from."""
    base = source.parent
    storage = config.storage.model_copy(update={"path": base / config.storage.path})
    docker = config.docker
    if docker.simulated_lab is not None:
        docker = docker.model_copy(update={"simulated_lab": base / docker.simulated_lab})
    if docker.hosts:
        docker = docker.model_copy(update={"hosts": {n: h.resolved(base) for n, h in docker.hosts.items()}})
    home = config.homeassistant
    if home is not None and home.simulated_home is not None:
        home = home.model_copy(update={"simulated_home": base / home.simulated_home})
    audit = config.audit.model_copy(
        update={key: base / value for key, value in config.audit.model_dump().items() if value is not None}
    )
    return config.model_copy(
        update={
            "storage": storage,
            "docker": docker,
            "homeassistant": home,
            "audit": audit,
            "hosts": resolve_hosts(config.hosts, base),
            "source": source,
        }
    )


def load_config(path: Path) -> Config:
    """Read, decode and validate the configuration file at `path`."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the configuration file is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return parse_config(data, path.resolve(), raw.decode("utf-8"))

"""Runbooks as agent tools: `[runbooks.NAME]` becomes the tool `runbook_NAME`.

Each runbook gets a classification row for the policy (`config.hosts.runbook_class`) and a tool spec
(`runbook_spec`): a description, an input schema built from its params, the call that fills the argv template and
runs it on the runbook's host, and, with `preview_argv`, a read-only preview the operator sees before deciding.
Parameter values are validated before any decision, and a value is always one word of the argv, never a shell
fragment.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from functools import lru_cache, partial
from typing import Annotated, Any, Literal

import mcp_types as types
from pydantic import AfterValidator, BaseModel, Field, StrictInt, StrictStr, create_model

from argobox.adapters.base import Backends
from argobox.adapters.commands import CommandFailed, CommandResult
from argobox.policy.decide import Grant
from argobox.server.config.hosts import RUNBOOK_PREFIX, ParamConfig, RunbookConfig, fill, tool_name
from argobox.server.mediation.arguments import Args
from argobox.server.mediation.tools import TOOLS, ToolSpec

PREVIEW_TIMEOUT_SECONDS = 30
PREVIEW_OUTPUT_BYTES = 16 * 1024
PREVIEW_LINES = 40
"""At most this many lines of the preview command's output are shown to the operator (the last ones)."""


def _check(param: ParamConfig, value: Any) -> Any:
    problem = param.problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _field(param: ParamConfig) -> tuple[Any, Any]:
    """The pydantic field of one param: its type, schema constraints, and the same check the config applies."""
    check = AfterValidator(partial(_check, param))
    extra: dict[str, Any] = {}
    if param.choices is not None:
        kind: Any = Literal[tuple(param.choices)]
    elif param.type == "integer":
        kind = Annotated[StrictInt, Field(ge=param.lower, le=param.max)]
    else:
        kind = Annotated[StrictStr, Field(max_length=param.max_length)]
        extra["pattern"] = param.pattern
    if param.type == "string" and not param.allow_leading_dash:
        extra["not"] = {"pattern": "^-"}
    info = Field(description=param.description, json_schema_extra=extra or None)
    default = param.default if param.default is not None else ...
    return Annotated[kind, info, check], default


def args_model(name: str, runbook: RunbookConfig) -> type[Args]:
    """The input model of `runbook_NAME`: every param required unless it has a default."""
    fields: dict[str, Any] = {param: _field(config) for param, config in runbook.params.items()}
    return create_model(f"Runbook_{name}Args", __base__=Args, **fields)


def _description(runbook: RunbookConfig) -> str:
    note = (
        " Needs operator approval unless your grant pre-approves these values; a pending result gives a request_id."
        if runbook.kind == "mutate"
        else ""
    )
    return f"{runbook.description} (a runbook on host {runbook.host!r}; the exit status decides success).{note}"


def runbook_spec(name: str, runbook: RunbookConfig) -> ToolSpec:
    """The agent tool `runbook_NAME`."""
    return _cached_spec(name, runbook.model_dump_json())


@lru_cache(maxsize=512)
def _cached_spec(name: str, dumped: str) -> ToolSpec:
    runbook = RunbookConfig.model_validate_json(dumped)
    limit = runbook.output_limit_kib * 1024

    async def run(backends: Backends, grant: Grant, args: BaseModel) -> CommandResult:
        argv = fill(runbook.argv, args.model_dump())
        return await backends.runner().run(runbook.host, argv, timeout=runbook.timeout_seconds, output_limit=limit)

    preview_argv = runbook.preview_argv or []

    async def preview(backends: Backends, args: BaseModel) -> dict[str, Any]:
        values = args.model_dump()
        return await _preview(backends, runbook, fill(runbook.argv, values), fill(preview_argv, values))

    read = runbook.kind == "read"
    return ToolSpec(
        tool_name(name),
        f"Runbook {name}",
        _description(runbook),
        args_model(name, runbook),
        CommandResult,
        run,
        destructive=not read,
        idempotent=read,
        preview=preview if runbook.preview_argv is not None else None,
        read_only=read,
    )


async def _preview(backends: Backends, runbook: RunbookConfig, argv: list[str], preview: list[str]) -> dict[str, Any]:
    """Run the read-only `preview_argv` and report its output, for the operator deciding the queued call.

    `argv` and `preview_argv` hold the agent's values, and `output` is what the host printed: the operator's views
    keep both apart from ArgoBox's words (`transport.operator_views`), and neither is worded as the agent's changes."""
    timeout = min(runbook.timeout_seconds, PREVIEW_TIMEOUT_SECONDS)
    try:
        result = await backends.runner().run(runbook.host, preview, timeout=timeout, output_limit=PREVIEW_OUTPUT_BYTES)
    except CommandFailed as exc:
        result = exc.result
    return {
        "host": runbook.host,
        "argv": argv,
        "preview_argv": preview,
        "exit_status": result.exit_status,
        "output": (result.stdout + result.stderr).splitlines()[-PREVIEW_LINES:],
    }


def preview_lines(preview: dict[str, Any]) -> list[str]:
    """A recorded runbook preview for `argobox show`: the preview command on its host, how it ended, its output."""
    status = preview.get("exit_status")
    ended = f"exited {status}" if status is not None else "was ended by a signal"
    words: list[Any] = preview.get("preview_argv") or []
    output: list[Any] = preview.get("output") or []
    return [
        f"  preview at {preview.get('at')}: preview_argv `{shlex.join(map(str, words))}` on host "
        f"{preview.get('host')!r} {ended}; its output, as the host printed it:",
        *(f"    | {line}" for line in output),
    ]


def tool_spec(runbooks: Mapping[str, RunbookConfig], name: str) -> ToolSpec | None:
    """The spec of any agent tool: a built-in one, or the runbook tool `name` of this configuration."""
    spec = TOOLS.get(name)
    if spec is not None or not name.startswith(RUNBOOK_PREFIX):
        return spec
    runbook = runbooks.get(name.removeprefix(RUNBOOK_PREFIX))
    return runbook_spec(name.removeprefix(RUNBOOK_PREFIX), runbook) if runbook is not None else None


def runbook_tool(runbooks: Mapping[str, RunbookConfig], name: str) -> types.Tool:
    """The runbook tool `name` as `tools/list` shows it (built once per runbook definition)."""
    spec = tool_spec(runbooks, name)
    if spec is None:
        raise KeyError(name)
    return _listed(spec)


@lru_cache(maxsize=512)
def _listed(spec: ToolSpec) -> types.Tool:
    return spec.mcp_tool()

"""`[limits]` and `[agents.NAME.limits]`: the budgets of agents, every key optional; an agent's table overrides the
top-level one key by key, which overrides the built-in defaults (`argobox.policy.limits.Limits`)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from argobox.policy.limits import Limits, Window


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class WindowConfig(_Section):
    count: int = Field(ge=1, le=1_000_000)
    window_seconds: int = Field(ge=1, le=30 * 24 * 3600)


class FailuresConfig(WindowConfig):
    cooldown_seconds: int = Field(ge=0, le=30 * 24 * 3600)


class LimitsConfig(_Section):
    """Budgets; every key is optional, and an agent's table overrides the top-level one key by key."""

    requests_per_minute: int | None = Field(default=None, ge=1, le=1_000_000)
    mutations_per_hour: int | None = Field(default=None, ge=1, le=1_000_000)
    max_pending: int | None = Field(default=None, ge=1, le=10_000)
    identical_calls: WindowConfig | None = None
    failures: FailuresConfig | None = None
    per_target: WindowConfig | None = None

    def over(self, base: Limits) -> Limits:
        """`base` with the keys set here replaced."""
        changes: dict[str, Any] = {
            key: value
            for key in ("requests_per_minute", "mutations_per_hour", "max_pending")
            if (value := getattr(self, key)) is not None
        }
        if self.identical_calls is not None:
            changes["identical_calls"] = Window(self.identical_calls.count, self.identical_calls.window_seconds)
        if self.per_target is not None:
            changes["per_target"] = Window(self.per_target.count, self.per_target.window_seconds)
        if self.failures is not None:
            changes["failures"] = Window(self.failures.count, self.failures.window_seconds)
            changes["cooldown_seconds"] = self.failures.cooldown_seconds
        return replace(base, **changes)

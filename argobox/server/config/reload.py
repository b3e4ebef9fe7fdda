"""What a configuration reload puts in force: the sections that apply live, and the agents a change affects.

Which sections apply live: `[agents]` (grants and tokens), `[limits]`, `[approvals]` and `[[operators]]`. Every
other section is bound to resources opened or tasks started at startup: a change there needs a restart, and the
running value is kept while the rest of the new file takes effect (so a revoked grant never waits for a restart).
"""

from __future__ import annotations

from dataclasses import dataclass

from argobox.server.config.model import Config

LIVE_SECTIONS = frozenset({"agents", "limits", "approvals", "operators"})
"""Top-level sections a reload applies; every other section needs a restart."""


@dataclass(frozen=True, slots=True)
class Reload:
    """What one accepted reload changed."""

    config: Config
    changed: frozenset[str]
    """Agents whose visible tools changed (they get a tools-changed event)."""
    revoked: frozenset[str]
    """Agents removed, or whose token changed: credentials presented until now are no longer valid."""
    restart_required: tuple[str, ...] = ()
    """Sections that changed but keep their running value until a restart."""


def plan_reload(old: Config, new: Config) -> Reload:
    """The configuration to put in force after `new` was loaded while `old` was in force, and what changed."""
    kept = tuple(
        name
        for name in type(new).model_fields
        if name not in LIVE_SECTIONS and name != "source" and getattr(new, name) != getattr(old, name)
    )
    config = new.replacing(**{name: getattr(old, name) for name in kept}) if kept else new
    changed: set[str] = set()
    revoked: set[str] = set()
    for agent in set(old.agents) | set(config.agents):
        before = old.grant(agent).visible if agent in old.agents else frozenset[str]()
        after = config.grant(agent).visible if agent in config.agents else frozenset[str]()
        if before != after:
            changed.add(agent)
        if agent in old.agents and (
            agent not in config.agents or old.agents[agent].token_sha256 != config.agents[agent].token_sha256
        ):
            revoked.add(agent)
    return Reload(config=config, changed=frozenset(changed), revoked=frozenset(revoked), restart_required=kept)

"""What an approval runs on: the target the operator was shown, and no other.

When a call is queued, its tool's previewer reads the target (never changing it) and the request keeps the target's
identity: a container's id and image, an entity's presence and, in the sensitive Home Assistant domains, its state.
When the approved request is about to run, the target is read again: if it is no longer the same (the container was
replaced under the same name, the door is no longer locked), the request fails with what changed, and nothing runs.
The operator can approve a fresh request.

A target that cannot be identified when the call is queued (the container does not exist yet, the backend does not
answer) is recorded as unidentified, with why; such a request never runs, since no one was shown what it would act on.
Nor does one of these tools whose request has no identity at all (queued before ArgoBox recorded targets).
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel

from argobox.adapters.base import AdapterError
from argobox.server.app import App
from argobox.server.mediation.tools import ToolSpec

logger = logging.getLogger("argobox")

UNIDENTIFIED = "unidentified"
"""The one key of a recorded target that could not be identified; its value says why. No identity has this key
(a container's are `container`, `id`, `image`, `host`; an entity's are entity ids, which contain a dot)."""


async def preview(app: App, spec: ToolSpec, args: BaseModel) -> dict[str, Any] | None:
    """What the operator should see of the call's target now (only reads the backend); an error is shown instead."""
    if spec.preview is None:
        return None
    try:
        return await spec.preview(app.backends, args)
    except AdapterError as exc:
        return {"error": app.redactor.text(str(exc))}
    except Exception:  # a preview is a courtesy: a bug in it must not stop the call being queued (it is logged)
        logger.exception("could not compute the preview of a %s call", spec.name)
        return {"error": "ArgoBox could not compute the preview (see the server log)"}


def identity_of(shown: dict[str, Any] | None) -> dict[str, Any] | None:
    """The target's identity in a preview, when the preview could be read."""
    if shown is None or "error" in shown:
        return None
    identity = shown.get("identity")
    return dict(identity) if isinstance(identity, dict) else None  # pyright: ignore[reportUnknownArgumentType]


def queued_identity(spec: ToolSpec, shown: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a request records of its target when it is queued: the identity in the preview `shown`, or, for a tool
    that identifies its target, why none could be read."""
    identity = identity_of(shown)
    if identity is not None or not spec.identifies_target:
        return identity
    why = shown.get("error") if shown is not None else None
    return {UNIDENTIFIED: str(why or "the preview did not say which target it is")}


def unidentified(spec: ToolSpec, recorded: dict[str, Any] | None) -> str | None:
    """Why an approved request may not run because its target was never identified (None when it was, or when its
    tool has no target identity)."""
    if not spec.identifies_target:
        return None
    if recorded is None:
        why = "no identity was recorded"
    elif UNIDENTIFIED in recorded:
        why = str(recorded[UNIDENTIFIED])
    else:
        return None
    return f"the target could not be identified when the request was queued; ask again (nothing was run; then: {why})"


def same_target(spec: ToolSpec, recorded: dict[str, Any] | None, shown: dict[str, Any]) -> bool | None:
    """Whether the target `shown` now is the one the request was queued for (None for a tool without identities)."""
    if unidentified(spec, recorded) is not None:
        return False
    return identity_of(shown) == recorded if recorded is not None else None


async def refusal(app: App, spec: ToolSpec, args: BaseModel, recorded: dict[str, Any] | None) -> str | None:
    """Why an approved request may not run on its target now (None when it may): its target was never identified,
    or it is no longer the one identified when the request was queued."""
    never = unidentified(spec, recorded)
    if never is not None or recorded is None:
        return never
    return await changed_target(app, spec, args, recorded)


async def changed_target(app: App, spec: ToolSpec, args: BaseModel, expected: dict[str, Any]) -> str | None:
    """Why the target is no longer the one approved (None when it still is). A target that cannot be read now is
    not the one approved either."""
    now = await preview(app, spec, args)
    if now is not None and "error" in now:
        return f"the target cannot be read now ({now['error']}); nothing was run"
    current = identity_of(now)
    if current == expected:
        return None
    differences = [
        f"{key}: {expected.get(key)!r} when it was queued, {None if current is None else current.get(key)!r} now"
        for key in sorted(set(expected) | set(current or {}))
        if expected.get(key) != (None if current is None else current.get(key))
    ]
    return (
        "the target changed since the request was queued ("
        + "; ".join(differences)
        + "); nothing was run: approve a fresh request if it is still wanted"
    )

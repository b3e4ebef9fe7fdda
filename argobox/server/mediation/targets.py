"""What an approval runs on: the target the operator was shown, and no other.

When a call is queued, its tool's previewer reads the target (never changing it) and the request keeps the target's
identity: a container's id and image, an entity's presence and, in the sensitive Home Assistant domains, its state.
When the approved request is about to run, the target is read again: if it is no longer the same (the container was
replaced under the same name, the door is no longer locked), the request fails with what changed, and nothing runs.
The operator can approve a fresh request.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel

from argobox.adapters.base import AdapterError
from argobox.server.app import App
from argobox.server.mediation.tools import ToolSpec

logger = logging.getLogger("argobox")


async def preview(app: App, spec: ToolSpec, args: BaseModel) -> dict[str, Any] | None:
    """What the operator should see of the call's target now (only reads the backend); an error is shown instead."""
    if spec.preview is None:
        return None
    try:
        return await spec.preview(app.backends, args)
    except AdapterError as exc:
        return {"error": app.redactor.text(str(exc))}
    except Exception:  # a preview is a courtesy: a bug in it must not stop the call being queued
        logger.exception("could not compute the preview of a %s call", spec.name)
        return {"error": "ArgoBox could not compute the preview (see the server log)"}


def identity_of(shown: dict[str, Any] | None) -> dict[str, Any] | None:
    """The target's identity in a preview, when the preview could be read."""
    if shown is None or "error" in shown:
        return None
    identity = shown.get("identity")
    return dict(identity) if isinstance(identity, dict) else None  # pyright: ignore[reportUnknownArgumentType]


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

"""`[notifications]`: where ArgoBox announces new requests and decisions (webhooks, ntfy topics, a Home Assistant
`notify.*` service)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class UrlChannelConfig(_Section):
    url: Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$", max_length=2048)]

    @field_validator("url")
    @classmethod
    def _usable(cls, url: str) -> str:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            raise ValueError("is not a usable URL (check the host and the port)") from None
        if not parts.hostname:
            raise ValueError("needs a host, e.g. https://hooks.example.org/argobox")
        return url


class HomeAssistantNotifyConfig(_Section):
    service: Annotated[str, StringConstraints(pattern=r"^notify\.[a-z0-9_]{1,64}$")]
    actions: bool = False
    """Approve and Deny buttons on the push, answered as the operator mapped by `[[operators]] ha_user_id`."""


class NotificationsConfig(_Section):
    webhooks: list[UrlChannelConfig] = Field(default_factory=list[UrlChannelConfig])
    """One JSON POST per new request and per decision."""
    ntfy: list[UrlChannelConfig] = Field(default_factory=list[UrlChannelConfig])
    """An ntfy-style topic URL: a plain-text POST with a Title header."""
    homeassistant: HomeAssistantNotifyConfig | None = None
    """A Home Assistant `notify.*` service (mobile push), through the [homeassistant] connection."""

"""Where the agent-facing HTTP daemon listens unless told otherwise.

A module of its own so that the command line can name the default without importing the HTTP stack (Starlette and
the SDK's server side take a third of a second to import, on every `argobox` command).
"""

from __future__ import annotations

DEFAULT_LISTEN = "127.0.0.1:8765"

"""The web operator console: approve from anywhere (a phone's browser included), and the operator MCP tools over
streamable HTTP at `/mcp`.

Served by `argobox console`, and by `argobox serve --http` on a listener of its own when `[console]` is configured.
Every import of the rest of ArgoBox goes through `ops`.
"""

"""ArgoBox: the control plane between an AI agent and a homelab."""

__version__ = "0.1.0"

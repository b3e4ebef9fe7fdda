#!/usr/bin/env bash
# Run the whole test suite against real backends: a private Docker engine, an offline Home Assistant and a private sshd.
# Starts the backends that are not already running, and stops (only) those it started. Extra arguments go to pytest.
# The whole suite (no arguments) starts with the static checks of scripts/lint.sh and stops there on a finding;
# chosen tests (arguments given) skip them unless ARGOBOX_LINT=1.
set -euo pipefail

REPO="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$REPO"
PY="${ARGOBOX_VENV:-$REPO/.venv}/bin/python"

if [ "$#" -eq 0 ] || [ "${ARGOBOX_LINT:-0}" = 1 ]; then
    bash scripts/lint.sh
fi

started=()
cleanup() {
    local backend
    for backend in "${started[@]}"; do
        bash "scripts/$backend.sh" stop || true
    done
}
trap cleanup EXIT

# sshd after the Docker engine: its sessions point DOCKER_HOST at that engine's socket.
for backend in docker-engine homeassistant sshd; do
    if ! bash "scripts/$backend.sh" status >/dev/null 2>&1; then
        started+=("$backend")
    fi
    exports="$(bash "scripts/$backend.sh" start)"
    eval "$exports"
done
export ARGOBOX_TEST_DOCKER_HOST ARGOBOX_TEST_HA_URL ARGOBOX_TEST_HA_TOKEN_FILE
export ARGOBOX_TEST_SSH_HOST ARGOBOX_TEST_SSH_PORT ARGOBOX_TEST_SSH_USER ARGOBOX_TEST_SSH_KEY ARGOBOX_TEST_SSH_KNOWN_HOSTS

# Debian's Chromium for the console's browser tests (Playwright drives it; it downloads no browser of its own).
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "test.sh: installing chromium with apt-get for the console's browser tests" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2 \
        || { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2; } \
        || echo "test.sh: chromium could not be installed; the browser tests will be skipped (they fail in CI)" >&2
fi

# MCP Inspector and the conformance suite (pinned, cached) for the interoperability tests.
if exports="$(bash scripts/node-tools.sh install)"; then
    eval "$exports"
    export ARGOBOX_NODE_TOOLS
else
    echo "test.sh: the Node tools could not be installed; the interoperability tests will be skipped (they fail in CI)" >&2
fi

# Hermes Agent (pinned, in its own cached venv) for the Hermes end-to-end tests.
if exports="$(bash scripts/hermes.sh install)"; then
    eval "$exports"
    export ARGOBOX_HERMES
else
    echo "test.sh: Hermes Agent could not be installed; the Hermes tests will be skipped (they fail in CI)" >&2
fi

# OpenClaw and the Node 24 it needs (pinned, cached) for the OpenClaw end-to-end tests.
if exports="$(bash scripts/openclaw.sh install)"; then
    eval "$exports"
    export ARGOBOX_OPENCLAW
else
    echo "test.sh: OpenClaw could not be installed; the OpenClaw tests will be skipped (they fail in CI)" >&2
fi

set +e
"$PY" -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "test.sh: pytest collected no tests; that is a failure" >&2
    exit 1
fi
exit "$status"

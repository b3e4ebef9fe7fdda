#!/usr/bin/env bash
# `make bench`: what ArgoBox adds to a read call against a bare MCP server, on the private Docker engine and the
# offline Home Assistant of the tests. Starts the backends that are not running, and stops (only) those it started.
# Extra arguments go to bench/bench_mediation.py (e.g. --quick, --rounds 3, --only stdio,http).
set -euo pipefail

REPO="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$REPO"
PY="${ARGOBOX_VENV:-$REPO/.venv}/bin/python"

started=()
cleanup() {
    local backend
    for backend in "${started[@]}"; do
        bash "scripts/$backend.sh" stop || true
    done
}
trap cleanup EXIT

for backend in docker-engine homeassistant; do
    if ! bash "scripts/$backend.sh" status >/dev/null 2>&1; then
        started+=("$backend")
    fi
    exports="$(bash "scripts/$backend.sh" start)"
    eval "$exports"
done
export ARGOBOX_TEST_DOCKER_HOST ARGOBOX_TEST_HA_URL ARGOBOX_TEST_HA_TOKEN_FILE

"$PY" bench/bench_mediation.py "$@"

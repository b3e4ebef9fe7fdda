#!/usr/bin/env bash
# Hermes Agent (Nous Research), the MCP client the Hermes end-to-end tests drive: pinned, installed once into its own
# venv in a cache directory and reused by later runs.
#
#   scripts/hermes.sh install   install it when missing, then print an export line
#   scripts/hermes.sh status    exit 0 if it is installed
#
# Cache: "${ARGOBOX_HERMES:-${XDG_CACHE_HOME:-$HOME/.cache}/argobox/hermes}"; the `hermes` command is $DIR/bin/hermes.
# Environment: ARGOBOX_HERMES_PYTHON, the interpreter the venv is made with (default: python3, which must be >= 3.11).
# Only the `export ...` line of `install` goes to stdout; everything else goes to stderr.
set -euo pipefail

exec 3>&1 1>&2 # keep stdout for the export line

HERMES_VERSION="0.19.0"
REQUIREMENT="hermes-agent[mcp]==$HERMES_VERSION"
DIR="${ARGOBOX_HERMES:-${XDG_CACHE_HOME:-$HOME/.cache}/argobox/hermes}"
STAMP="$DIR/.argobox-installed"

log() { printf 'hermes.sh: %s\n' "$*"; }
die() { log "error: $*"; exit 1; }

installed() {
    [[ -f "$STAMP" && "$(cat "$STAMP")" == "$REQUIREMENT" && -x "$DIR/bin/hermes" && -x "$DIR/bin/python" ]]
}

python_for_venv() {
    local py="${ARGOBOX_HERMES_PYTHON:-python3}"
    command -v "$py" >/dev/null 2>&1 || die "no $py: install Python >= 3.11 (Debian: python3 python3-venv)"
    "$py" -c 'import sys, ensurepip, venv; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null \
        || die "$py is older than 3.11 or lacks venv/ensurepip: install python3-venv, or set ARGOBOX_HERMES_PYTHON"
    printf '%s\n' "$py"
}

install() {
    if ! installed; then
        mkdir -p "$(dirname "$DIR")"
        exec 9>"$DIR.lock" # two runs starting at once install it once
        flock 9
        if ! installed; then
            local t0=$SECONDS py
            rm -f "$STAMP"
            if ! "$DIR/bin/python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
                rm -rf "$DIR" # missing or half-created: start over
                py="$(python_for_venv)"
                log "creating the venv $DIR with $py"
                "$py" -m venv "$DIR"
            fi
            log "installing $REQUIREMENT into $DIR (about a minute the first time)"
            "$DIR/bin/python" -m pip install --disable-pip-version-check --no-input -q "$REQUIREMENT"
            [[ -x "$DIR/bin/hermes" ]] || die "pip finished but $DIR/bin/hermes is missing"
            "$DIR/bin/python" -c 'import importlib.metadata as m, sys, mcp
sys.exit(0 if m.version("hermes-agent") == sys.argv[1] else 1)' "$HERMES_VERSION" \
                || die "$DIR does not hold hermes-agent $HERMES_VERSION with its MCP extra"
            printf '%s\n' "$REQUIREMENT" >"$STAMP.tmp"
            mv -f "$STAMP.tmp" "$STAMP"
            log "installed in $((SECONDS - t0)) s"
        fi
        exec 9>&-
    fi
    printf 'export ARGOBOX_HERMES=%q\n' "$DIR" >&3
}

case "${1:-}" in
install) install ;;
status) installed ;;
*) die "usage: $0 install|status" ;;
esac

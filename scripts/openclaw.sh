#!/usr/bin/env bash
# OpenClaw, the agent the OpenClaw end-to-end tests drive: pinned, with the Node it needs (>= 24.16, from the npm
# registry's `node` package), installed once into a cache directory and reused by later runs.
#
#   scripts/openclaw.sh install   install it when missing (apt nodejs/npm when absent and root), print an export line
#   scripts/openclaw.sh status    exit 0 if it is installed
#
# Cache: "${ARGOBOX_OPENCLAW:-${XDG_CACHE_HOME:-$HOME/.cache}/argobox/openclaw}"; OpenClaw is
# $DIR/node_modules/openclaw/openclaw.mjs, run with $DIR/node_modules/node/bin/node. npm runs with a scratch HOME and
# cache inside it, so nothing is written to the user's ~/.npm or ~/.openclaw.
# Only the `export ...` line of `install` goes to stdout; everything else goes to stderr.
set -euo pipefail

exec 3>&1 1>&2 # keep stdout for the export line

OPENCLAW_VERSION="2026.9.6"
NODE_VERSION="24.21.0"
DIR="${ARGOBOX_OPENCLAW:-${XDG_CACHE_HOME:-$HOME/.cache}/argobox/openclaw}"
STAMP="$DIR/.argobox-installed"
WANT="openclaw@$OPENCLAW_VERSION node@$NODE_VERSION"

log() { printf 'openclaw.sh: %s\n' "$*"; }
die() { log "error: $*"; exit 1; }

installed() {
    [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" && -x "$DIR/node_modules/node/bin/node" \
        && -f "$DIR/node_modules/openclaw/openclaw.mjs" ]]
}

ensure_npm() {
    command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1 && return 0
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        log "installing nodejs and npm with apt-get"
        DEBIAN_FRONTEND=noninteractive apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm
    else
        die "missing node/npm: install the Debian packages nodejs and npm (as root: apt-get install -y nodejs npm)"
    fi
}

npm_here() {
    (cd "$DIR" && HOME="$DIR/home" npm_config_cache="$DIR/npm-cache" npm_config_update_notifier=false \
        npm install --no-audit --no-fund --loglevel=error --save-exact "$@")
}

install() {
    if ! installed; then
        mkdir -p "$(dirname "$DIR")"
        exec 9>"$DIR.lock" # two runs starting at once install it once
        flock 9
        if ! installed; then
            local t0=$SECONDS
            ensure_npm
            rm -f "$STAMP"
            mkdir -p "$DIR/home"
            [[ -f "$DIR/package.json" ]] || printf '{"name": "argobox-openclaw", "private": true}\n' >"$DIR/package.json"
            # Node first: OpenClaw's install scripts then run with it (npm puts node_modules/.bin first on their PATH).
            log "installing node@$NODE_VERSION into $DIR"
            npm_here "node@$NODE_VERSION"
            [[ "$("$DIR/node_modules/node/bin/node" --version)" == "v$NODE_VERSION" ]] \
                || die "npm finished but $DIR/node_modules/node/bin/node is not Node $NODE_VERSION"
            log "installing openclaw@$OPENCLAW_VERSION into $DIR (a few minutes the first time)"
            npm_here "openclaw@$OPENCLAW_VERSION"
            local version
            version="$(HOME="$DIR/home" "$DIR/node_modules/node/bin/node" "$DIR/node_modules/openclaw/openclaw.mjs" --version)" \
                || die "openclaw@$OPENCLAW_VERSION was installed under $DIR but does not run"
            [[ "$version" == *"$OPENCLAW_VERSION"* ]] || die "$DIR holds OpenClaw '$version', not $OPENCLAW_VERSION"
            rm -rf "$DIR/npm-cache" "$DIR/home" # the installed tree is what is reused
            printf '%s\n' "$WANT" >"$STAMP.tmp"
            mv -f "$STAMP.tmp" "$STAMP"
            log "installed in $((SECONDS - t0)) s"
        fi
        exec 9>&-
    fi
    printf 'export ARGOBOX_OPENCLAW=%q\n' "$DIR" >&3
}

case "${1:-}" in
install) install ;;
status) installed ;;
*) die "usage: $0 install|status" ;;
esac

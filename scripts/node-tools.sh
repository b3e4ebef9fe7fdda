#!/usr/bin/env bash
# The Node tools the interoperability tests drive: MCP Inspector's CLI and the official conformance suite, with the
# Node 22 the suite needs (from the npm registry's `node` package). Pinned, installed once into a cache directory
# and reused by later runs.
#
#   scripts/node-tools.sh install   install what is missing (apt nodejs/npm when absent and root), print export lines
#   scripts/node-tools.sh status    exit 0 if everything is installed
#
# Cache: "${ARGOBOX_NODE_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/argobox/node}". npm runs with a scratch HOME and cache
# inside it, so nothing is written to the user's ~/.npm or ~/.mcp-inspector.
# Only the `export ...` lines of `install` go to stdout; everything else goes to stderr.
set -euo pipefail

exec 3>&1 1>&2 # keep stdout for the export lines

INSPECTOR_VERSION="2.12.0"
CONFORMANCE_VERSION="0.2.0-alpha.11"
NODE22_VERSION="22"
DIR="${ARGOBOX_NODE_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/argobox/node}"
STAMP="$DIR/.installed-inspector-$INSPECTOR_VERSION-conformance-$CONFORMANCE_VERSION-node-$NODE22_VERSION"

log() { printf 'node-tools: %s\n' "$*"; }
die() { log "error: $*"; exit 1; }

installed() {
    [[ -f "$STAMP" && -x "$DIR/node_modules/.bin/mcp-inspector" && -x "$DIR/node_modules/node/bin/node" \
        && -f "$DIR/node_modules/@modelcontextprotocol/conformance/dist/index.js" ]]
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

install() {
    if ! installed; then
        ensure_npm
        mkdir -p "$DIR/home"
        log "installing @modelcontextprotocol/inspector@$INSPECTOR_VERSION, @modelcontextprotocol/conformance@$CONFORMANCE_VERSION and node@$NODE22_VERSION into $DIR"
        [[ -f "$DIR/package.json" ]] || printf '{"name": "argobox-node-tools", "private": true}\n' >"$DIR/package.json"
        (
            cd "$DIR"
            HOME="$DIR/home" npm_config_cache="$DIR/npm-cache" npm_config_update_notifier=false npm install --no-audit --no-fund --loglevel=error \
                --save-exact "@modelcontextprotocol/inspector@$INSPECTOR_VERSION" \
                "@modelcontextprotocol/conformance@$CONFORMANCE_VERSION" "node@$NODE22_VERSION"
        )
        installed_ok=1
        [[ -x "$DIR/node_modules/node/bin/node" ]] || installed_ok=0
        [[ -x "$DIR/node_modules/.bin/mcp-inspector" ]] || installed_ok=0
        ((installed_ok)) || die "npm finished but the tools are not where expected under $DIR/node_modules"
        rm -rf "$DIR/npm-cache" # the installed tree is what is reused; the download cache only takes space
        touch "$STAMP"
    fi
    printf 'export ARGOBOX_NODE_TOOLS=%q\n' "$DIR" >&3
}

case "${1:-}" in
install) install ;;
status) installed ;;
*) die "usage: $0 install|status" ;;
esac

#!/usr/bin/env bash
# Build ArgoBox's container image on the private Docker engine (scripts/docker-engine.sh) with no registry at all:
# a Debian 12 base made here with debootstrap (kept in a cache), the Python wheels made here by pip (kept in a
# cache), then `docker build` of the Dockerfile with the base as a build argument and pip reading the wheels from
# a loopback HTTP server.
#
#   scripts/container-image.sh base    make (once) and import the Debian base; print `export ARGOBOX_BASE_IMAGE=...`
#   scripts/container-image.sh build   the base, then the ArgoBox image; print `export ARGOBOX_TEST_IMAGE=...`
#   scripts/container-image.sh wheels  only the wheelhouse (no engine needed); print `export ARGOBOX_WHEELHOUSE=...`
#
# Environment:
#   ARGOBOX_TEST_DOCKER_HOST  the engine (default: the socket scripts/docker-engine.sh makes)
#   ARGOBOX_CACHE_DIR         cache root (default: ${XDG_CACHE_HOME:-$HOME/.cache}/argobox)
#   ARGOBOX_DEBIAN_MIRROR     mirror for debootstrap (default: the Debian mirror apt uses for bookworm)
#   ARGOBOX_IMAGE             the tag to build (default: argobox:test)
#
# The base tarball (~180 MB, about a minute to make) and the wheelhouse are reused by every later run, whatever the
# checkout; the engine's own layer cache makes a rebuild with unchanged sources take seconds. Only the export line
# goes to stdout; everything else goes to stderr.
set -euo pipefail

exec 3>&1 1>&2 # keep stdout for the one export line

REPO="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
STATE_ROOT="${ARGOBOX_STATE_DIR:-$REPO/.state}"
CACHE="${ARGOBOX_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/argobox}"
HOST="${ARGOBOX_TEST_DOCKER_HOST:-unix://$STATE_ROOT/docker/docker.sock}"
IMAGE="${ARGOBOX_IMAGE:-argobox:test}"
PY="${ARGOBOX_VENV:-$REPO/.venv}/bin/python"
[[ -x "$PY" ]] || PY=python3

SUITE=bookworm
PYTHON_MINOR=3.11 # bookworm's python3: the wheels are made for it
VARIANT=minbase
PACKAGES=python3,python3-venv
RECIPE_VERSION=1 # bump when the way the base is made changes
ARCH="$(dpkg --print-architecture 2>/dev/null || uname -m)"
RECIPE_ID="$(printf '%s\n' "$SUITE" "$VARIANT" "$PACKAGES" "$RECIPE_VERSION" "$ARCH" | sha256sum | cut -c1-12)"
BASE_TAR="$CACHE/debian-base/debian-$SUITE-$VARIANT-$ARCH-$RECIPE_ID.tar"
BASE_IMAGE="argobox-base/debian:$SUITE-$RECIPE_ID"

log() { printf 'container-image: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

docker_cli() {
    # A private, empty client config (no credential helpers, no contexts); the classic builder, which the
    # engine's version supports without any image of its own.
    DOCKER_CONFIG="$STATE_ROOT/docker/client-config" DOCKER_BUILDKIT=0 docker -H "$HOST" "$@"
}

# -- the Debian base ------------------------------------------------------------------------------------------------

# The mirror apt uses for $SUITE (deb822 .sources or one-line .list files); empty when none is found.
apt_mirror() {
    python3 - "$SUITE" /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources <<'EOF'
import re, sys
suite, files = sys.argv[1], sys.argv[2:]
for name in files:
    try:
        text = open(name, encoding="utf-8").read()
    except OSError:
        continue
    if name.endswith(".sources"):
        for stanza in re.split(r"\n\s*\n", text):
            fields = dict(re.findall(r"^([A-Za-z-]+):[ \t]*(.*)$", stanza, re.M))
            if "deb" in fields.get("Types", "").split() and suite in fields.get("Suites", "").split():
                print(fields.get("URIs", "").split()[0]); sys.exit()
    else:
        for line in text.splitlines():
            words = [w for w in re.sub(r"\[[^]]*\]", "", line).split()]
            if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
                print(words[1]); sys.exit()
EOF
}

ensure_debootstrap() {
    command -v debootstrap >/dev/null 2>&1 && return 0
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        log "installing debootstrap with apt-get"
        DEBIAN_FRONTEND=noninteractive apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap
    else
        die "debootstrap is missing: install the Debian package debootstrap (as root: apt-get install -y debootstrap)"
    fi
}

# Unmount whatever is still mounted under $1 (debootstrap mounts /proc and /sys in its target), deepest first.
unmount_under() {
    local mp
    awk -v root="$1/" 'index($5, root) == 1 {print length($5), $5}' /proc/self/mountinfo | sort -rn | cut -d' ' -f2- |
        while IFS= read -r mp; do umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || log "could not unmount $mp"; done
}

make_base_tar() {
    [[ "$(id -u)" == 0 ]] || die "making the Debian base needs root (debootstrap); run as root or put $BASE_TAR there"
    ensure_debootstrap
    local work mirror started=$SECONDS
    mkdir -p "$CACHE/debian-base"
    work="$(mktemp -d "$CACHE/debian-base/work.XXXXXX")"
    # shellcheck disable=SC2064 # expand $work now
    trap "unmount_under '$work'; rm -rf --one-file-system '$work'" EXIT
    mirror="${ARGOBOX_DEBIAN_MIRROR:-$(apt_mirror || true)}"
    log "debootstrap $SUITE ($VARIANT + $PACKAGES) from ${mirror:-the default mirror of debootstrap}; about a minute"
    # shellcheck disable=SC2086 # an empty mirror is no argument
    if ! debootstrap --variant="$VARIANT" --include="$PACKAGES" "$SUITE" "$work/root" $mirror >"$work/debootstrap.log" 2>&1; then
        tail -n 30 "$work/debootstrap.log" || true
        die "debootstrap failed (log above); set ARGOBOX_DEBIAN_MIRROR to a reachable Debian mirror and retry"
    fi
    unmount_under "$work/root"
    # What a container gets from the engine (resolv.conf, hostname) or never needs (downloaded packages, lists).
    rm -rf "$work/root/var/cache/apt/archives/"*.deb "$work/root/var/cache/apt/"*.bin "$work/root/var/lib/apt/lists/"* \
        "$work/root/var/log/bootstrap.log" "$work/root/etc/resolv.conf" "$work/root/etc/hostname"
    tar --numeric-owner -C "$work/root" -cf "$work/base.tar" .
    mv -f "$work/base.tar" "$BASE_TAR"
    log "made $BASE_TAR in $((SECONDS - started)) s"
    unmount_under "$work"
    rm -rf --one-file-system "$work"
    trap - EXIT
}

ensure_base() {
    docker_cli version --format '{{.Server.Version}}' >/dev/null 2>&1 ||
        die "no Docker engine answers at $HOST: run scripts/docker-engine.sh start (and eval its output)"
    if docker_cli image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        return 0
    fi
    mkdir -p "$CACHE"
    exec 8>"$CACHE/debian-base.lock"
    flock -w 600 8 || die "another run holds $CACHE/debian-base.lock"
    [[ -s "$BASE_TAR" ]] || make_base_tar
    log "importing $BASE_TAR as $BASE_IMAGE"
    docker_cli import --change 'CMD ["/bin/bash"]' "$BASE_TAR" "$BASE_IMAGE" >/dev/null
    exec 8>&-
}

# -- the wheels -----------------------------------------------------------------------------------------------------

# The build requirements and the dependencies pyproject.toml names, one a line.
requirements() {
    "$PY" - "$REPO/pyproject.toml" <<'EOF'
import sys, tomllib
data = tomllib.load(open(sys.argv[1], "rb"))
print("\n".join([*data["build-system"]["requires"], *data["project"]["dependencies"]]))
EOF
}

# A directory of wheels for the dependencies and the build requirements in pyproject.toml, made once per version of
# them (pip's own cache makes a new one quick too).
wheelhouse() {
    local key dir requirements
    "$PY" -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$PYTHON_MINOR'.split('.'))))" ||
        die "$PY is not Python $PYTHON_MINOR; the wheels must suit the base's python3 (set ARGOBOX_VENV)"
    requirements="$(requirements)"
    key="$(printf '%s\n%s\n' "$requirements" "$ARCH" | sha256sum | cut -c1-12)"
    dir="$CACHE/wheelhouse/py$PYTHON_MINOR-$key"
    mkdir -p "$CACHE/wheelhouse"
    exec 7>"$CACHE/wheelhouse.lock"
    flock -w 600 7 || die "another run holds $CACHE/wheelhouse.lock"
    if [[ ! -f "$dir/.complete" ]]; then
        log "making the wheelhouse $dir"
        rm -rf "$dir"
        mkdir -p "$dir"
        printf '%s\n' "$requirements" >"$dir/requirements.txt"
        "$PY" -m pip wheel --quiet --wheel-dir "$dir" --requirement "$dir/requirements.txt" >&2 ||
            die "pip could not make the wheelhouse (output above)"
        touch "$dir/.complete"
    fi
    exec 7>&-
    printf '%s\n' "$dir"
}

# -- the image ------------------------------------------------------------------------------------------------------

# A digest of everything the build reads: the build context, the Dockerfile and the base image.
source_digest() {
    (
        cd "$REPO"
        find Dockerfile .dockerignore pyproject.toml README.md LICENSE argobox contrib/docker -type f \
            ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum
        docker_cli image inspect --format '{{.Id}}' "$BASE_IMAGE"
    ) | sha256sum | cut -c1-16
}

build_image() {
    local wheels server_log server_pid port="" deadline started=$SECONDS digest
    digest="$(source_digest)"
    if [[ "$(docker_cli image inspect --format '{{index .Config.Labels "org.argobox.source-digest"}}' "$IMAGE" 2>/dev/null)" == "$digest" ]]; then
        log "$IMAGE is up to date (source digest $digest)"
        return 0
    fi
    wheels="$(wheelhouse)"
    mkdir -p "$STATE_ROOT/container-image"
    server_log="$STATE_ROOT/container-image/wheel-server.log"
    : >"$server_log" # exists before the server's own redirect does: sed below must not race it
    python3 -u -m http.server --bind 127.0.0.1 --directory "$wheels" 0 >"$server_log" 2>&1 &
    server_pid=$!
    # shellcheck disable=SC2064 # expand the pid now
    trap "kill $server_pid 2>/dev/null || true" EXIT
    deadline=$((SECONDS + 15))
    while ((SECONDS < deadline)) && [[ -z "$port" ]]; do
        port="$(sed -n 's/.* port \([0-9][0-9]*\).*/\1/p' "$server_log" | head -n 1)"
        [[ -n "$port" ]] || sleep 0.1
    done
    [[ -n "$port" ]] || die "the wheel server did not start: $(cat "$server_log")"
    log "building $IMAGE on $BASE_IMAGE (wheels from $wheels)"
    # --network host: pip reaches the wheel server on the host's loopback (the engine runs without a bridge).
    docker_cli build --network host --tag "$IMAGE" --label "org.argobox.source-digest=$digest" \
        --build-arg "BASE=$BASE_IMAGE" \
        --build-arg PIP_NO_INDEX=1 \
        --build-arg "PIP_FIND_LINKS=http://127.0.0.1:$port/" \
        --file "$REPO/Dockerfile" "$REPO" >&2 || die "docker build failed (output above)"
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    trap - EXIT
    log "built $IMAGE in $((SECONDS - started)) s"
}

case "${1:-}" in
    base)
        ensure_base
        printf 'export ARGOBOX_BASE_IMAGE=%s\n' "$BASE_IMAGE" >&3 ;;
    build)
        ensure_base
        build_image
        printf 'export ARGOBOX_TEST_IMAGE=%s\n' "$IMAGE" >&3 ;;
    wheels)
        dir="$(wheelhouse)"
        printf 'export ARGOBOX_WHEELHOUSE=%q\n' "$dir" >&3 ;;
    *) printf 'usage: %s base|build|wheels\n' "$0"; exit 2 ;;
esac

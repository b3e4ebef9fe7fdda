#!/usr/bin/env bash
# Run a private, sandbox-friendly Docker engine for ArgoBox's real-backend tests.
#
#   scripts/docker-engine.sh start    start dockerd (idempotent), ensure the test image, print the export line
#   scripts/docker-engine.sh stop     stop dockerd and everything it left behind (processes, mounts)
#   scripts/docker-engine.sh status   exit 0 if the engine answers
#
# State lives in "${ARGOBOX_STATE_DIR:-<repo>/.state}/docker". No firewall rules, no bridge, no registry needed.
# Only the `export ARGOBOX_TEST_DOCKER_HOST=...` line of `start` goes to stdout; everything else goes to stderr.
set -euo pipefail

exec 3>&1 1>&2 # keep stdout for the one export line

REPO="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
STATE_ROOT="${ARGOBOX_STATE_DIR:-$REPO/.state}"
STATE="$STATE_ROOT/docker"
SOCK="$STATE/docker.sock"
HOST="unix://$SOCK"
PIDFILE="$STATE/dockerd.pid"
LOG="$STATE/dockerd.log"
DRIVER_FILE="$STATE/storage-driver"
TEST_IMAGE="argobox-test/busybox:latest"
START_TIMEOUT="${ARGOBOX_DOCKER_START_TIMEOUT:-30}"
STOP_TIMEOUT="${ARGOBOX_DOCKER_STOP_TIMEOUT:-20}"

log() { printf 'docker-engine: %s\n' "$*"; }
die() { log "error: $*"; exit 1; }

docker_cli() {
    # A private, empty client config: no credential helpers, no user contexts.
    DOCKER_CONFIG="$STATE/client-config" docker -H "$HOST" "$@"
}

answers() { [[ -S "$SOCK" ]] && docker_cli version --format '{{.Server.Version}}' >/dev/null 2>&1; }

# Print the pid recorded in the pidfile if that process is alive and is a dockerd; nothing otherwise.
live_pid() {
    local pid
    [[ -f "$PIDFILE" ]] || return 0
    pid="$(tr -dc '0-9' <"$PIDFILE" || true)"
    [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 0
    if tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "dockerd"; then
        printf '%s\n' "$pid"
    fi
}

ensure_packages() {
    local missing=()
    command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
    command -v docker >/dev/null 2>&1 || missing+=(docker.io)
    command -v busybox >/dev/null 2>&1 || missing+=(busybox-static)
    ((${#missing[@]} == 0)) && return 0
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        log "installing docker.io and busybox-static with apt-get"
        DEBIAN_FRONTEND=noninteractive apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io busybox-static
    else
        die "missing ${missing[*]}: install the Debian packages docker.io and busybox-static (as root: apt-get install -y docker.io busybox-static)"
    fi
}

# Remove what a dead dockerd left: its pidfile and socket (dockerd refuses to start over a pidfile of a live pid).
clear_stale() {
    if [[ -f "$PIDFILE" && -z "$(live_pid)" ]]; then
        log "removing stale pidfile $PIDFILE"
        rm -f "$PIDFILE"
    fi
    if [[ -e "$SOCK" && -z "$(live_pid)" ]]; then
        log "removing stale socket $SOCK"
        rm -f "$SOCK"
    fi
}

# Launch dockerd with one storage driver and wait until it answers. Returns non-zero if it does not.
launch() {
    local driver="$1" deadline pid
    log "starting dockerd (storage driver $driver), log: $LOG"
    if [[ -f "$LOG" ]] && (($(stat -c %s "$LOG") > 10 * 1024 * 1024)); then
        mv -f "$LOG" "$LOG.old" # keep one old log, bounded
    fi
    printf '\n==== %s starting dockerd (storage driver %s) ====\n' "$(date -u +%FT%TZ)" "$driver" >>"$LOG"
    setsid dockerd \
        --iptables=false --ip6tables=false --bridge=none \
        --storage-driver="$driver" \
        --data-root="$STATE/data" --exec-root="$STATE/exec" \
        -H "$HOST" --pidfile="$PIDFILE" \
        </dev/null >>"$LOG" 2>&1 3>&- 9>&- &
    pid=$!
    deadline=$((SECONDS + START_TIMEOUT))
    while ((SECONDS < deadline)); do
        if answers; then
            printf '%s\n' "$driver" >"$DRIVER_FILE"
            log "dockerd answers (pid $(live_pid))"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null && [[ -z "$(live_pid)" ]]; then
            log "dockerd (storage driver $driver) exited during start-up"
            return 1
        fi
        sleep 0.2
    done
    log "dockerd (storage driver $driver) did not answer within ${START_TIMEOUT}s"
    stop_engine
    return 1
}

build_test_image() {
    if docker_cli image inspect "$TEST_IMAGE" >/dev/null 2>&1; then
        return 0
    fi
    log "building $TEST_IMAGE from $(command -v busybox)"
    local root applet
    root="$(mktemp -d "$STATE/rootfs.XXXXXX")"
    mkdir -p "$root/bin" "$root/tmp" "$root/etc"
    cp "$(command -v busybox)" "$root/bin/busybox"
    for applet in $("$root/bin/busybox" --list); do
        [[ "$applet" == busybox || -e "$root/bin/$applet" ]] || ln -s busybox "$root/bin/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
    printf 'root:x:0:\n' >"$root/etc/group"
    tar -C "$root" -cf - . | docker_cli import --change 'CMD ["/bin/sh"]' - "$TEST_IMAGE" >/dev/null
    rm -rf "$root"
    log "built $TEST_IMAGE"
}

start_engine() {
    ensure_packages
    mkdir -p "$STATE/client-config"
    (( ${#SOCK} < 100 )) || die "socket path $SOCK is too long for a unix socket; set ARGOBOX_STATE_DIR to a shorter path"
    if [[ -n "$(live_pid)" ]] && ! answers; then
        # A dockerd of ours is alive but silent: give a starting one a moment, then replace it.
        local deadline=$((SECONDS + 5))
        while ((SECONDS < deadline)) && ! answers; do sleep 0.2; done
        if ! answers; then
            log "dockerd $(live_pid) does not answer; restarting it"
            stop_engine
        fi
    fi
    if answers; then
        log "dockerd already running and answering at $HOST"
    else
        clear_stale
        local preferred="overlay2"
        [[ -f "$DRIVER_FILE" ]] && preferred="$(cat "$DRIVER_FILE")"
        if ! launch "$preferred"; then
            if [[ "$preferred" == overlay2 ]]; then
                log "overlay2 failed; falling back to vfs"
                stop_engine
                clear_stale
                launch vfs || { log "dockerd log tail:"; tail -n 40 "$LOG" || true; die "dockerd did not start"; }
            else
                log "dockerd log tail:"
                tail -n 40 "$LOG" || true
                die "dockerd did not start"
            fi
        fi
    fi
    build_test_image
    printf 'export ARGOBOX_TEST_DOCKER_HOST=%s\n' "$HOST" >&3
}

# Pids of leftover engine processes (containerd, shims, runc, docker-proxy) whose arguments name our state dir.
orphans() {
    local dir args exe
    for dir in /proc/[0-9]*; do
        [[ -r "$dir/cmdline" ]] || continue
        args=()
        mapfile -d '' -t args 2>/dev/null <"$dir/cmdline" || continue
        ((${#args[@]})) || continue
        exe="${args[0]##*/}"
        case "$exe" in containerd* | dockerd | runc | docker-proxy) ;; *) continue ;; esac
        [[ "${args[*]}" == *"$STATE/"* ]] && printf '%s\n' "${dir#/proc/}"
    done
    return 0
}

# Send TERM, wait up to $2 seconds, then KILL. Only the given pids.
terminate() {
    local pids wait_s="$2" deadline pid alive
    read -r -a pids <<<"$1"
    ((${#pids[@]})) || return 0
    kill -TERM "${pids[@]}" 2>/dev/null || true
    deadline=$((SECONDS + wait_s))
    while ((SECONDS < deadline)); do
        alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || return 0
        sleep 0.2
    done
    log "still running after ${wait_s}s, sending KILL to ${pids[*]}"
    kill -KILL "${pids[@]}" 2>/dev/null || true
    sleep 0.2
}

# Mount points under $STATE, deepest first (mountinfo escapes space as \040 and backslash as \134).
state_mounts() {
    local real
    real="$(cd "$STATE" 2>/dev/null && pwd -P)" || return 0
    awk '{print $5}' /proc/self/mountinfo | while read -r mp; do
        mp="${mp//\\040/ }"
        mp="${mp//\\134/\\}"
        if [[ "$mp" == "$real/"* ]]; then printf '%s\n' "$mp"; fi
    done | awk '{print length, $0}' | sort -rn | cut -d' ' -f2-
}

stop_engine() {
    local pid leftovers mp
    pid="$(live_pid)"
    if [[ -n "$pid" ]]; then
        log "stopping dockerd (pid $pid)"
        terminate "$pid" "$STOP_TIMEOUT"
    fi
    leftovers="$(orphans | tr '\n' ' ')"
    if [[ -n "${leftovers// /}" ]]; then
        log "stopping leftover processes: $leftovers"
        terminate "$leftovers" 5
    fi
    while IFS= read -r mp; do
        [[ -n "$mp" ]] || continue
        umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || log "could not unmount $mp"
    done < <(state_mounts)
    rm -f "$PIDFILE" "$SOCK"
    return 0
}

with_lock() {
    mkdir -p "$STATE"
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$STATE/.lock"
        flock -w 60 9 || die "another docker-engine.sh holds $STATE/.lock"
    fi
    "$@"
}

case "${1:-}" in
    start) with_lock start_engine ;;
    stop) with_lock stop_engine; log "stopped" ;;
    status)
        if answers; then log "running at $HOST"; exit 0; fi
        log "not answering at $HOST"; exit 1 ;;
    *) printf 'usage: %s start|stop|status\n' "$0"; exit 2 ;;
esac

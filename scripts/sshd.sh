#!/usr/bin/env bash
# Run a private OpenSSH server on loopback for ArgoBox's runbook and ssh:// Docker tests.
#
#   scripts/sshd.sh start    start sshd (idempotent) and print its export lines
#   scripts/sshd.sh stop     stop it (never fails if nothing runs)
#   scripts/sshd.sh status   exit 0 if it accepts our key
#
# State lives in "${ARGOBOX_STATE_DIR:-<repo>/.state}/sshd": its own host key, config, log and pidfile, a client key
# pair, the authorized_keys file holding that key, and a known_hosts file naming the server's key. The test user is
# the user running this script (sshd only lets a non-root daemon authenticate its own user, and no account is made).
# Its sessions get DOCKER_HOST pointing at the private engine of scripts/docker-engine.sh, so that an ssh:// Docker
# URL reaches that engine through this server (`docker system dial-stdio`).
# Only the `export ...` lines of `start` go to stdout; everything else goes to stderr.
set -euo pipefail

exec 3>&1 1>&2 # keep stdout for the export lines

REPO="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
STATE_ROOT="${ARGOBOX_STATE_DIR:-$REPO/.state}"
STATE="$STATE_ROOT/sshd"
CONFIG="$STATE/sshd_config"
PIDFILE="$STATE/sshd.pid"
PORTFILE="$STATE/port"
LOG="$STATE/sshd.log"
HOST_KEY="$STATE/host_ed25519_key"
CLIENT_KEY="$STATE/client_ed25519_key"
AUTHORIZED="$STATE/authorized_keys"
KNOWN_HOSTS="$STATE/known_hosts"
DOCKER_SOCK="$STATE_ROOT/docker/docker.sock"
SSHD="${ARGOBOX_SSHD:-/usr/sbin/sshd}"
START_TIMEOUT="${ARGOBOX_SSHD_START_TIMEOUT:-20}"
USER_NAME="$(id -un)"

log() { printf 'sshd.sh: %s\n' "$*"; }
die() { log "error: $*"; exit 1; }

ensure_packages() {
    [[ -x "$SSHD" ]] && command -v ssh >/dev/null 2>&1 && command -v ssh-keygen >/dev/null 2>&1 && return 0
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        log "installing openssh-server with apt-get"
        DEBIAN_FRONTEND=noninteractive apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssh-server openssh-client
    else
        die "missing $SSHD: install the Debian package openssh-server (as root: apt-get install -y openssh-server)"
    fi
}

# The pid in the pidfile if that process is alive and is an sshd started with our config; nothing otherwise.
live_pid() {
    local pid
    [[ -f "$PIDFILE" ]] || return 0
    pid="$(tr -dc '0-9' <"$PIDFILE" || true)"
    [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 0
    if tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$CONFIG"; then
        printf '%s\n' "$pid"
    fi
}

port() { [[ -f "$PORTFILE" ]] && tr -dc '0-9' <"$PORTFILE"; }

# True when the server accepts our key and its host key is the one in our known_hosts.
answers() {
    local p
    p="$(port || true)"
    [[ -n "$p" && -n "$(live_pid)" ]] || return 1
    ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$KNOWN_HOSTS" \
        -o IdentitiesOnly=yes -o IdentityAgent=none -o ConnectTimeout=3 -i "$CLIENT_KEY" -p "$p" \
        "$USER_NAME@127.0.0.1" true </dev/null >/dev/null 2>&1
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

make_keys() {
    [[ -f "$HOST_KEY" ]] || ssh-keygen -q -t ed25519 -N '' -C "argobox-test-host" -f "$HOST_KEY"
    [[ -f "$CLIENT_KEY" ]] || ssh-keygen -q -t ed25519 -N '' -C "argobox-test-client" -f "$CLIENT_KEY"
    chmod 600 "$HOST_KEY" "$CLIENT_KEY"
    cp "$CLIENT_KEY.pub" "$AUTHORIZED"
    chmod 600 "$AUTHORIZED"
}

write_config() {
    local p="$1"
    mkdir -p "$STATE/docker-client-config"
    cat >"$CONFIG" <<EOF
# Written by scripts/sshd.sh: a private daemon for tests, on loopback only.
ListenAddress 127.0.0.1
Port $p
HostKey $HOST_KEY
PidFile $PIDFILE
AuthorizedKeysFile $AUTHORIZED
AllowUsers $USER_NAME
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
PermitUserEnvironment no
AllowTcpForwarding no
AllowAgentForwarding no
X11Forwarding no
PrintMotd no
MaxStartups 64:30:128
MaxSessions 64
LogLevel VERBOSE
SetEnv DOCKER_HOST=unix://$DOCKER_SOCK DOCKER_CONFIG=$STATE/docker-client-config
EOF
    printf '[127.0.0.1]:%s %s\n' "$p" "$(cut -d' ' -f1-2 "$HOST_KEY.pub")" >"$KNOWN_HOSTS"
}

start_sshd() {
    ensure_packages
    mkdir -p "$STATE"
    chmod 700 "$STATE"
    make_keys
    if answers; then
        log "sshd already running on 127.0.0.1:$(port) (pid $(live_pid))"
    else
        stop_sshd
        local p pid deadline
        p="$(free_port)"
        printf '%s\n' "$p" >"$PORTFILE"
        write_config "$p"
        [[ "$(id -u)" == 0 ]] && mkdir -p /run/sshd # the privilege separation directory
        "$SSHD" -t -f "$CONFIG" || die "sshd rejected $CONFIG"
        log "starting sshd on 127.0.0.1:$p, log: $LOG"
        setsid "$SSHD" -D -f "$CONFIG" -E "$LOG" </dev/null >/dev/null 2>&1 3>&- 9>&- &
        pid=$!
        deadline=$((SECONDS + START_TIMEOUT))
        until answers; do
            if ! kill -0 "$pid" 2>/dev/null; then
                tail -n 20 "$LOG" || true
                die "sshd exited during start-up"
            fi
            ((SECONDS < deadline)) || { tail -n 20 "$LOG" || true; die "sshd did not answer within ${START_TIMEOUT}s"; }
            sleep 0.1
        done
        log "sshd answers on 127.0.0.1:$p (pid $(live_pid))"
    fi
    printf 'export ARGOBOX_TEST_SSH_HOST=127.0.0.1\n' >&3
    printf 'export ARGOBOX_TEST_SSH_PORT=%s\n' "$(port)" >&3
    printf 'export ARGOBOX_TEST_SSH_USER=%s\n' "$USER_NAME" >&3
    printf 'export ARGOBOX_TEST_SSH_KEY=%s\n' "$CLIENT_KEY" >&3
    printf 'export ARGOBOX_TEST_SSH_KNOWN_HOSTS=%s\n' "$KNOWN_HOSTS" >&3
}

stop_sshd() {
    local pid deadline
    pid="$(live_pid)"
    if [[ -n "$pid" ]]; then
        log "stopping sshd (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        deadline=$((SECONDS + 10))
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$PIDFILE"
    return 0
}

with_lock() {
    mkdir -p "$STATE"
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$STATE/.lock"
        flock -w 60 9 || die "another sshd.sh holds $STATE/.lock"
    fi
    "$@"
}

case "${1:-}" in
    start) with_lock start_sshd ;;
    stop) with_lock stop_sshd; log "stopped" ;;
    status)
        if answers; then log "running on 127.0.0.1:$(port)"; exit 0; fi
        log "not running"; exit 1 ;;
    *) printf 'usage: %s start|stop|status\n' "$0"; exit 2 ;;
esac

"""Small helper for scripts/homeassistant.sh: wait for Home Assistant and mint a long-lived token.

Runs with the Home Assistant venv's interpreter (stdlib urllib for HTTP, aiohttp -- which HA
ships -- for the one websocket call). Never prints a token.

    ha_token.py --url URL wait-http  --timeout S [--pid PID]
    ha_token.py --url URL token      --token-file F --creds-file C
    ha_token.py --url URL check      --token-file F [--timeout S]
    ha_token.py --url URL wait-ready --token-file F --timeout S [--entity ID ...]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import secrets
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

Json = dict[str, Any] | list[Any] | str | int | float | bool | None
"""A parsed JSON answer (or the text of one that is not JSON)."""

OWNER_NAME = "ArgoBox Test Owner"
OWNER_USERNAME = "argobox"
LLAT_CLIENT_NAME = "argobox-tests"
LLAT_LIFESPAN_DAYS = 3650


def log(msg: str) -> None:
    print(f"ha_token.py: {msg}", file=sys.stderr, flush=True)


def http(
    method: str,
    url: str,
    *,
    token: str | None = None,
    json_body: object | None = None,
    form: dict[str, str] | None = None,
    timeout: float = 10,
) -> tuple[int, Json]:
    """Return (status, parsed JSON or text). Raises OSError on connection problems."""
    headers = {"Accept": "application/json"}
    data = None
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if json_body is not None:
        data = json.dumps(json_body).encode()
        headers["Content-Type"] = "application/json"
    elif form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"{url!r} is not an http(s) URL")
    req = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310 - checked above
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - an http(s) URL, checked above
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    text = raw.decode("utf-8", "replace")
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def read_token(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.read().strip()


def write_private(path: str, content: str) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(content)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def pid_alive(pid: int | None) -> bool:
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still "exists"; treat it as dead.
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


# --------------------------------------------------------------------------- commands


def cmd_wait_http(args: argparse.Namespace) -> int:
    """Wait until the HTTP server answers at all. /auth/providers needs no token, so probing it
    does not log "invalid authentication" warnings the way an unauthenticated /api/ does; it
    answers 400 "Onboarding not finished" before onboarding and 200 after, both mean "up"."""
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if not pid_alive(args.pid):
            log(f"hass (pid {args.pid}) exited before its API answered")
            return 1
        try:
            status, _ = http("GET", f"{args.url}/auth/providers", timeout=3)
            if status in (200, 400):
                return 0
        except OSError:
            pass
        time.sleep(0.5)
    return 1


def cmd_check(args: argparse.Namespace) -> int:
    try:
        token = read_token(args.token_file)
        status, body = http("GET", f"{args.url}/api/", token=token, timeout=args.timeout)
    except OSError as err:
        log(f"check failed: {err}")
        return 1
    if status == 200 and isinstance(body, dict) and body.get("message") == "API running.":
        return 0
    log(f"check failed: HTTP {status}")
    return 1


def cmd_wait_ready(args: argparse.Namespace) -> int:
    token = read_token(args.token_file)
    deadline = time.monotonic() + args.timeout
    missing: list[str] = list(args.entity)
    state = "?"
    while time.monotonic() < deadline:
        try:
            status, body = http("GET", f"{args.url}/api/config", token=token, timeout=5)
            state = body.get("state", "?") if status == 200 and isinstance(body, dict) else f"HTTP {status}"
            if state == "RUNNING":
                missing = [
                    e
                    for e in args.entity
                    if http("GET", f"{args.url}/api/states/{e}", token=token, timeout=5)[0] != 200
                ]
                if not missing:
                    return 0
        except OSError:
            pass
        time.sleep(0.5)
    log(f"not ready after {args.timeout} s: core state {state}, missing entities {missing}")
    return 1


def _onboard(url: str, client_id: str, creds_file: str) -> str:
    """Create the owner through onboarding; returns an authorization code."""
    password = secrets.token_urlsafe(24)
    # Save the credentials first: if HA accepts the user but we die before writing the
    # token, the next run can still log in.
    write_private(creds_file, json.dumps({"username": OWNER_USERNAME, "password": password}))
    status, body = http(
        "POST",
        f"{url}/api/onboarding/users",
        json_body={
            "client_id": client_id,
            "name": OWNER_NAME,
            "username": OWNER_USERNAME,
            "password": password,
            "language": "en",
        },
    )
    if status != 200 or not isinstance(body, dict) or "auth_code" not in body:
        raise RuntimeError(f"onboarding failed: HTTP {status}: {body!r}")
    return body["auth_code"]


def _login(url: str, client_id: str, creds_file: str) -> str:
    """Log in with the saved owner credentials; returns an authorization code."""
    with open(creds_file, encoding="utf-8") as fh:
        creds = json.load(fh)
    status, body = http(
        "POST",
        f"{url}/auth/login_flow",
        json_body={"client_id": client_id, "handler": ["homeassistant", None], "redirect_uri": client_id},
    )
    if status != 200 or not isinstance(body, dict) or "flow_id" not in body:
        raise RuntimeError(f"login flow start failed: HTTP {status}: {body!r}")
    status, body = http(
        "POST",
        f"{url}/auth/login_flow/{body['flow_id']}",
        json_body={"client_id": client_id, "username": creds["username"], "password": creds["password"]},
    )
    if status != 200 or not isinstance(body, dict) or body.get("type") != "create_entry":
        raise RuntimeError(f"login failed: HTTP {status}: {body.get('errors') if isinstance(body, dict) else body!r}")
    return body["result"]


async def _long_lived_token(url: str, access_token: str) -> str:
    # Shipped with Home Assistant, whose interpreter runs this; not installed where the type checker runs.
    aiohttp: Any = importlib.import_module("aiohttp")

    ws_url = url.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + "/api/websocket"
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.ws_connect(ws_url) as ws:
        msg = await ws.receive_json()
        if msg.get("type") != "auth_required":
            raise RuntimeError(f"unexpected websocket greeting: {msg.get('type')}")
        await ws.send_json({"type": "auth", "access_token": access_token})
        msg = await ws.receive_json()
        if msg.get("type") != "auth_ok":
            raise RuntimeError(f"websocket auth failed: {msg.get('type')}")
        await ws.send_json(
            {
                "id": 1,
                "type": "auth/long_lived_access_token",
                # HA refuses a second long-lived token with the same client name.
                "client_name": f"{LLAT_CLIENT_NAME} {time.strftime('%Y-%m-%dT%H:%M:%S')}-{secrets.token_hex(3)}",
                "lifespan": LLAT_LIFESPAN_DAYS,
            }
        )
        msg = await ws.receive_json()
        if not msg.get("success"):
            raise RuntimeError(f"long-lived token request failed: {msg.get('error')}")
        return msg["result"]


def cmd_token(args: argparse.Namespace) -> int:
    url = args.url
    client_id = f"{url}/"
    status, body = http("GET", f"{url}/api/onboarding")
    user_step_done = True
    if status == 200 and isinstance(body, list):
        user_step_done = any(step.get("step") == "user" and step.get("done") for step in body)
    try:
        if not user_step_done:
            log("onboarding: creating the owner user")
            code = _onboard(url, client_id, args.creds_file)
        elif os.path.exists(args.creds_file):
            log("already onboarded: logging in with the saved owner credentials")
            code = _login(url, client_id, args.creds_file)
        else:
            log("already onboarded but no saved credentials: reset the state (homeassistant.sh reset)")
            return 1
        status, body = http(
            "POST",
            f"{url}/auth/token",
            form={"grant_type": "authorization_code", "code": code, "client_id": client_id},
        )
        if status != 200 or not isinstance(body, dict) or "access_token" not in body:
            raise RuntimeError(f"token exchange failed: HTTP {status}")
        llat = asyncio.run(_long_lived_token(url, body["access_token"]))
    except (RuntimeError, OSError, KeyError, ValueError) as err:
        log(str(err))
        return 1
    write_private(args.token_file, llat + "\n")
    log(f"long-lived token saved to {args.token_file}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="e.g. http://127.0.0.1:18123")
    sub = parser.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("wait-http")
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("--pid", type=int)
    p.set_defaults(func=cmd_wait_http)

    p = sub.add_parser("check")
    p.add_argument("--token-file", required=True)
    p.add_argument("--timeout", type=float, default=5)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("wait-ready")
    p.add_argument("--token-file", required=True)
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("--entity", action="append", default=[])
    p.set_defaults(func=cmd_wait_ready)

    p = sub.add_parser("token")
    p.add_argument("--token-file", required=True)
    p.add_argument("--creds-file", required=True)
    p.set_defaults(func=cmd_token)

    args = parser.parse_args(argv)
    args.url = args.url.rstrip("/")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

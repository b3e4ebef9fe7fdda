"""Run the real `argobox` command, killing its own process with SIGKILL when it reaches one chosen point.

    python tests/crash_launcher.py --config argobox.toml approve ID --as alice

with `ARGOBOX_CRASH_AT` naming the point (one of `POINTS`) and `ARGOBOX_CRASH_MARK` a file written just before the
kill, so the test knows the point was reached (the process then dies without a word, as on a power cut or an OOM
kill). Without `ARGOBOX_CRASH_AT` it is plain `argobox`. The product has no crash hook: this script wraps the real
function at the point, then runs `argobox.server.cli.main(argv)` unchanged.

With `ARGOBOX_CRASH_PID1=1` the command runs as process 1 of a new PID namespace, as the container image runs it
(`ENTRYPOINT ["argobox"]`); a namespace's process 1 cannot SIGKILL itself, so it asks this launcher, its parent
outside the namespace, to do it. That needs root (CAP_SYS_ADMIN); without it the launcher exits with NO_NAMESPACE.

`ARGOBOX_CRASH_SEND_TIMEOUT` (seconds) shortens how long a notification send may take, and so how soon a claim of
a process that died is taken over (four times that): the crash test waits for a redelivery in seconds, not minutes.
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

CLONE_NEWPID = 0x20000000
NO_NAMESPACE = 77
"""The exit status when a PID namespace cannot be made here (not root)."""

POINTS = ("queued", "approved", "executing", "finished", "outbox", "checkpoint", "prune", "answered")
"""Where a request's life can be cut: after the pending request is committed (the agent has no answer yet); after
the approval is committed, before the backend is called; after the backend acted, before the outcome is recorded;
after the outcome is committed, before anything else (the printout, the notification); after a notification was
sent, before its delivery is recorded; between writing the audit checkpoint's temporary file and renaming it over
the checkpoint; inside the prune transaction, before its commit; after a read's answer was sent, before its
outcome (written after the answer) is recorded."""


def crash(point: str, **facts: Any) -> None:
    """Write the mark (what was reached, by which process) to disk, then SIGKILL this process."""
    mark = os.environ.get("ARGOBOX_CRASH_MARK")
    if mark:
        fd = os.open(mark, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, json.dumps({"point": point, "pid": os.getpid(), **facts}).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    if ask := os.environ.get("ARGOBOX_CRASH_ASK"):  # process 1 of its namespace: the parent sends the SIGKILL
        os.write(int(ask), b"k")
        while True:
            signal.pause()
    os.kill(os.getpid(), signal.SIGKILL)


def after(owner: Any, name: str, point: str, when: Callable[[Any], bool] = lambda _: True) -> None:
    """Wrap the coroutine method `owner.name`: run it, then crash when `when(its result)`."""
    original = getattr(owner, name)

    @functools.wraps(original)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = await original(*args, **kwargs)
        if when(result):
            crash(point)
        return result

    setattr(owner, name, wrapper)


def install(point: str) -> None:
    """Put the kill at `point` (see POINTS)."""
    from argobox.server.store import RequestStatus, Store, trail

    if point == "queued":
        after(Store, "admit", point, lambda a: a.record is not None and a.record.status is RequestStatus.PENDING)
    elif point == "approved":
        after(Store, "approve", point)
    elif point == "executing":
        from argobox.adapters.docker_engine import DockerEngine

        after(DockerEngine, "restart_container", point)
    elif point == "finished":
        after(Store, "finish", point)
    elif point == "outbox":
        settle = Store.settle_notification

        async def settle_or_crash(self: Store, notification: Any, **kwargs: Any) -> None:
            if kwargs.get("error") is None:  # the receiver took it; its delivery is not recorded yet
                crash(point, notification=notification.id)
            await settle(self, notification, **kwargs)

        Store.settle_notification = settle_or_crash
    elif point == "checkpoint":
        replace = os.replace

        def replace_or_crash(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            if Path(dst).name.endswith(".checkpoint"):
                crash(point, temporary=str(src), temporary_exists=Path(src).exists(), replaced=Path(dst).exists())
            replace(src, dst, *args, **kwargs)

        os.replace = replace_or_crash
    elif point == "prune":
        pruning = trail.pruning

        def pruning_then_crash(**kwargs: Any) -> Any:
            body = pruning(**kwargs)

            def crash_before_commit(tx: Any) -> Any:
                body(tx)  # the pruned event appended, the events deleted: all of it uncommitted
                crash(point)

            return crash_before_commit

        trail.pruning = pruning_then_crash
    elif point == "answered":
        from argobox.server.store import connection

        connection.BEHIND_DELAY_S = 60.0  # the outcome waits for the transport to say the answer is out
        answered = connection.Connection.answered

        def crash_before_writing(self: connection.Connection) -> None:
            waiting = [what for _, what in self._waiting]  # pyright: ignore[reportPrivateUsage]
            if waiting:  # the answer is out; the outcome is not written yet
                crash(point, waiting=waiting)
            answered(self)

        connection.Connection.answered = crash_before_writing
    else:
        raise SystemExit(f"crash_launcher: unknown ARGOBOX_CRASH_AT {point!r}; expected one of {', '.join(POINTS)}")


def as_process_one(run: Callable[[], int]) -> int:
    """Run `run` as process 1 of a new PID namespace; SIGKILL it from here when it asks (see `crash`), and end the
    way it ended (killed by the same signal, or with its exit status)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWPID) != 0:
        print(f"crash_launcher: no PID namespace: {os.strerror(ctypes.get_errno())}", file=sys.stderr)
        return NO_NAMESPACE
    asked, ask = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(asked)
        os.environ["ARGOBOX_CRASH_ASK"] = str(ask)
        code = 1
        try:
            code = run()
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)  # the parent's interpreter state (forked) must not be torn down twice
    os.close(ask)
    if os.read(asked, 1):  # empty when the child ended without asking
        os.kill(child, signal.SIGKILL)
    _, status = os.waitpid(child, 0)
    if os.WIFSIGNALED(status):
        os.kill(os.getpid(), os.WTERMSIG(status))
    return os.waitstatus_to_exitcode(status)


def main() -> int:
    if os.environ.get("ARGOBOX_CRASH_PID1") == "1":
        return as_process_one(argobox_main)
    return argobox_main()


def argobox_main() -> int:
    point = os.environ.get("ARGOBOX_CRASH_AT")
    if point:
        install(point)
    if timeout := os.environ.get("ARGOBOX_CRASH_SEND_TIMEOUT"):
        from argobox.server.mediation import notify

        notify.SEND_TIMEOUT_SECONDS = float(timeout)
    from argobox.server.cli import main as argobox

    return argobox(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())

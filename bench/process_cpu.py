"""The CPU time a server process has used (user and system, every thread), read from /proc: what each call costs the
machine, which the load of a shared machine hardly changes, beside the latencies, which it does."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()  # after "pid (comm) "


def child_pid(matches: Callable[[list[str]], bool]) -> int:
    """The process started by this one whose command line `matches`."""
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int(_stat_fields(int(entry.name))[1]) != me:
                continue
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except (OSError, ValueError, IndexError):
            continue  # ended meanwhile
        if matches(argv):
            return int(entry.name)
    raise SystemExit("the server process to measure was not found among this process's children")


class CpuMeter:
    """One server process's CPU time in milliseconds."""

    def __init__(self, matches: Callable[[list[str]], bool]) -> None:
        self.pid = child_pid(matches)

    def ms(self) -> float:
        fields = _stat_fields(self.pid)
        return (int(fields[11]) + int(fields[12])) * 1000 / TICKS


def has(*parts: str, lacks: str | None = None) -> Callable[[list[str]], bool]:
    """A command line that contains each of `parts` (anywhere in an argument) and no argument `lacks`."""

    def matches(argv: list[str]) -> bool:
        line = " ".join(argv)
        return all(part in line for part in parts) and (lacks is None or lacks not in argv)

    return matches

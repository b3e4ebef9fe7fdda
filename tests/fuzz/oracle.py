"""What every answer, log and stored byte is checked for, and the figures a run reports.

A finding is a leak (a seeded secret, or a 12-character piece of one, where it must never be), a traceback or
source path in what a client or operator sees, a crash (the server failed to answer, or answered with the SDK's
"unexpected error" instead of ArgoBox's own words) or a hang. Findings are collected, not raised at once, so that a
run reports all it found; each test asserts at its end that it found none.
"""

from __future__ import annotations

import json
import re
import reprlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import argobox
from tests.fuzz.hostile import ARG_SECRET_MARK

TRACEBACK_MARKERS = ("Traceback", 'File "', '.py", line')
SOURCE_PATHS = tuple(
    str(p) for p in {Path(argobox.__file__).resolve().parents[1], Path(json.__file__).resolve().parent.parent} if p
)
"""The checkout's and the standard library's folders: a path under them in an answer is a stack trace's."""
PROBE = 12
"""A secret shows when any run of this many of its characters does (a secret cut short still leaks)."""
ARG_SECRET = re.compile(re.escape(ARG_SECRET_MARK) + r"[0-9a-f]{4,20}")
MAX_SHOWN = 300
LONG_RUN = 512
"""Beyond this length a run of text is searched for each probe rather than cut into windows."""
PUBLIC_PARTS = frozenset({"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"})
"""Parts of a secret that are the same in every secret of its kind (a JWT's header), so say nothing of it."""


def probes(secret: str) -> set[str]:
    """Pieces of `secret` whose presence means a leak: each line or dotted part of it long enough to be secret,
    cut into overlapping runs of PROBE characters (armour lines such as "-----BEGIN ...-----" and public parts left
    out)."""
    found: set[str] = set()
    for part in (piece.strip() for piece in re.split(r"[\n.]", secret)):
        if len(part) < PROBE or part.startswith("-----") or part in PUBLIC_PARTS:
            continue
        found.update(part[i : i + PROBE] for i in range(0, len(part) - PROBE + 1, PROBE // 2))
        found.add(part[-PROBE:])
    return found


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    """leak, traceback, crash, hang or change (on a backend)."""
    surface: str
    what: str
    input: str

    def __str__(self) -> str:
        return f"{self.kind} on {self.surface}: {self.what} (input: {self.input})"


@dataclass
class Oracle:
    """The seeded secrets, the findings so far and the inputs tried on each surface."""

    secrets: dict[str, str] = field(default_factory=dict[str, str])
    """Secret values by where they were seeded."""
    findings: list[Finding] = field(default_factory=list[Finding])
    inputs: Counter[str] = field(default_factory=Counter[str])
    _probes: dict[str, str] = field(default_factory=dict[str, str])
    _runs: re.Pattern[str] | None = None

    def seed(self, where: str, secret: str) -> None:
        self.secrets[where] = secret
        self._probes.update(dict.fromkeys(probes(secret), where))
        alphabet = "".join(sorted({c for probe in self._probes for c in probe}))
        self._runs = re.compile(f"[{re.escape(alphabet)}]{{{PROBE},}}")

    def leaked(self, text: str) -> dict[str, str]:
        """The secrets found in `text`: where each was seeded (each drawn argument secret on its own), and the piece
        of `text` that shows it.

        A probe can only lie in a run of at least PROBE characters of the probes' own alphabet: each such run is
        looked up window by window (a short run) or probe by probe (a long one); one regular expression of every
        probe was ten times slower on a 50 KB answer."""
        found: dict[str, str] = {}
        for run in self._runs.finditer(text) if self._runs is not None else ():
            for where, at in self._in_run(run[0]):
                found.setdefault(where, _around(text, run.start() + at))
        for match in ARG_SECRET.finditer(text):
            found.setdefault(f"a secret-looking argument ({match[0]}...)", _around(text, match.start()))
        return found

    def _in_run(self, run: str) -> Iterator[tuple[str, int]]:
        """(where the secret was seeded, offset) of each probe found in `run`."""
        if len(run) <= LONG_RUN:
            for at in range(len(run) - PROBE + 1):
                if (where := self._probes.get(run[at : at + PROBE])) is not None:
                    yield where, at
            return
        for probe, where in self._probes.items():
            if (at := run.find(probe)) >= 0:
                yield where, at

    def check(self, surface: str, text: str, shown_input: Any, *, shown: bool = True) -> None:
        """Check one answer (or log, or file) for secrets and, if `shown` to a client or operator, for tracebacks."""
        for where, excerpt in self.leaked(text).items():
            self.report("leak", surface, f"the secret from {where} in {excerpt}", shown_input)
        if shown:
            for marker in (*TRACEBACK_MARKERS, *SOURCE_PATHS):
                if (at := text.find(marker)) >= 0:
                    self.report("traceback", surface, f"{marker!r} in {_around(text, at)}", shown_input)

    def report(self, kind: str, surface: str, what: str, shown_input: Any) -> None:
        self.findings.append(Finding(kind, surface, what, describe(shown_input)))

    def count(self, surface: str, n: int = 1) -> None:
        self.inputs[surface] += n

    def of(self, surface: str) -> list[Finding]:
        return [f for f in self.findings if f.surface == surface]

    def figures(self) -> dict[str, Any]:
        """The run's figures: inputs tried in all and per surface; leaks (a secret, a traceback or a source path
        where it must not be, as docs/security.md counts them), crashes (and hangs) and changes on the backends."""
        kinds = Counter(f.kind for f in self.findings)
        return {
            "inputs": sum(self.inputs.values()),
            "leaks": kinds["leak"] + kinds["traceback"],
            "crashes": kinds["crash"] + kinds["hang"],
            "changes": kinds["change"],
            "surfaces": dict(sorted(self.inputs.items())),
        }


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxdict, _REPR.maxlist = 6, 240, 240, 12, 12


def describe(value: Any) -> str:
    """A bounded, one-line, printable account of an input, for a finding."""
    text = value if isinstance(value, str) else _REPR.repr(value)
    text = text.encode("unicode_escape", errors="backslashreplace").decode("ascii")
    return text if len(text) <= MAX_SHOWN else f"{text[:MAX_SHOWN]}... ({len(text)} characters)"


def _around(text: str, at: int) -> str:
    return describe(text[max(0, at - 100) : at + 100])


def failures(findings: list[Finding], limit: int = 10) -> str:
    """An assertion message listing the first findings."""
    shown = "\n".join(f"  {f}" for f in findings[:limit])
    more = f"\n  ... and {len(findings) - limit} more" if len(findings) > limit else ""
    return f"{len(findings)} finding(s):\n{shown}{more}"

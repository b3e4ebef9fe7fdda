"""The command runner's own guarantees, on this machine: quoting for a POSIX shell that no value can escape (checked
by real shells), the `local` host running an argv with no shell, bounded output, and timeouts that kill."""

from __future__ import annotations

import json
import random
import shlex
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from argobox.adapters.base import BackendUnavailable, TargetNotFound
from argobox.adapters.commands import (
    BoundedOutput,
    CommandFailed,
    CommandTimedOut,
    HostCommands,
    LocalCommands,
    remote_command_line,
)

SHOW_ARGV = [sys.executable, "-c", "import json, sys; print(json.dumps(sys.argv[1:]))"]
"""A program that prints exactly the arguments it received, as JSON."""


def nasty_values(sentinel: Path) -> list[str]:
    """Values that would add a command, an option, a redirection or an expansion if a shell interpreted them."""
    s = str(sentinel)
    return [
        f"; touch {s}",
        f"&& touch {s}",
        f"|| touch {s}",
        f"| touch {s}",
        f"& touch {s}",
        f"$(touch {s})",
        f"`touch {s}`",
        f"'; touch {s}; '",
        f'"; touch {s}; "',
        f"\\'; touch {s}; \\'",
        f"> {s}",
        f">> {s}",
        f"< {s}",
        "2>&1",
        f"\ntouch {s}",
        f"a\nb; touch {s}",
        f"\r\ntouch {s}",
        "*",
        "/*",
        "?",
        "[a-z]*",
        "~",
        "~root",
        "$HOME",
        "${HOME}",
        "$((6*7))",
        "{a,b}",
        "!!",
        "#not a comment",
        "\\",
        "\\\\",
        "'",
        '"',
        "''",
        '""',
        "",
        " ",
        "\t",
        "-n",
        "--help",
        "-rf /",
        "--output=/etc/passwd",
        "ünïcødé ✓",
        "\x01\x1b[31m\x7f",
        "x" * 20_000,
    ]


def random_words(count: int, seed: int = 16) -> list[str]:
    """Random strings over every printable ASCII character plus newline, tab and a few non-ASCII ones."""
    rng = random.Random(seed)
    alphabet = [chr(c) for c in range(32, 127)] + ["\n", "\t", "é", "✓"]
    return ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40))) for _ in range(count)]


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_every_value_reaches_the_program_as_exactly_one_argument_through_a_real_shell(
    shell: str, tmp_path: Path
) -> None:
    sentinel = tmp_path / "pwned"
    words = nasty_values(sentinel) + random_words(300)

    done = subprocess.run(
        [shell, "-c", remote_command_line([*SHOW_ARGV, *words])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == words
    assert not sentinel.exists()
    assert done.stderr == ""


def test_quoting_is_shlex_quote_word_by_word() -> None:
    words = ["zpool", "scrub", "tank; reboot", "-x", "it's"]

    assert remote_command_line(words) == " ".join(shlex.quote(w) for w in words)
    assert shlex.split(remote_command_line(words)) == words


@pytest.mark.parametrize("argv", [[], ["echo", "a\0b"]])
def test_an_empty_argv_or_a_nul_is_refused(argv: list[str]) -> None:
    with pytest.raises(ValueError, match=r"empty argv|NUL"):
        remote_command_line(argv)


def test_bounded_output_keeps_the_newest_bytes() -> None:
    out = BoundedOutput(10)
    for chunk in (b"0123456789", b"abc", b"def"):
        out.add(chunk)

    assert out.text() == "6789abcdef" and out.truncated is True


def test_a_secret_is_removed_before_the_cut_so_no_part_of_it_is_kept() -> None:
    secret = "tok-0123456789abcdef"
    plain, redacted = BoundedOutput(12), BoundedOutput(12, [secret])
    for out in (plain, redacted):
        out.add(f"x{secret}".encode())
        out.add(b"\nend\n")

    assert plain.text() == "9abcdef\nend\n"  # without the secret given, its end survives the cut
    assert redacted.text() == "dacted>\nend\n" and redacted.truncated is True
    assert not any(secret[i:] in redacted.text() for i in range(len(secret) - 3))


@pytest.mark.anyio
async def test_a_local_command_never_shows_a_secret_even_across_the_output_limit() -> None:
    secret = "s3cr3t-token-that-must-not-leak"
    runner = HostCommands({}, [secret])
    argv = ["sh", "-c", 'printf "%s" "$1"; seq 1 20', "sh", secret]

    result = await runner.run("local", argv, timeout=30, output_limit=len("\n".join(map(str, range(1, 21)))) + 10)

    assert result.stdout.endswith("19\n20\n") and result.stdout_truncated is True
    assert not any(secret[i:] in result.stdout for i in range(len(secret) - 3))


@pytest.mark.anyio
async def test_the_local_host_runs_the_argv_without_a_shell(tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    words = nasty_values(sentinel)[:30]

    result = await LocalCommands().run([*SHOW_ARGV, *words], timeout=30, output_limit=1 << 20)

    assert result.exit_status == 0 and result.host == "local"
    assert json.loads(result.stdout) == words
    assert not sentinel.exists()
    assert result.argv == [*SHOW_ARGV, *words] and result.duration_seconds >= 0


@pytest.mark.anyio
async def test_a_local_command_never_sees_argobox_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARGOBOX_HA_TOKEN", "secret-home-assistant-token")

    result = await LocalCommands().run(["env"], timeout=30, output_limit=65536)

    assert "secret-home-assistant-token" not in result.stdout
    assert "ARGOBOX" not in result.stdout


@pytest.mark.anyio
async def test_a_failing_local_command_fails_with_its_status_and_the_tail_of_stderr() -> None:
    runner = HostCommands({})
    with pytest.raises(CommandFailed) as caught:
        await runner.run(
            "local", ["sh", "-c", "echo working; echo 'disk is full' >&2; exit 3"], timeout=30, output_limit=4096
        )

    assert "exited with status 3: disk is full" in str(caught.value)
    assert caught.value.detail["exit_status"] == 3 and caught.value.detail["argv"][0] == "sh"
    assert caught.value.result.stdout == "working\n"


@pytest.mark.anyio
async def test_a_missing_program_is_a_clear_error() -> None:
    with pytest.raises(TargetNotFound, match="no program 'no-such-program-here'"):
        await LocalCommands().run(["no-such-program-here"], timeout=5, output_limit=1024)


@pytest.mark.anyio
async def test_an_unknown_host_is_refused_before_anything_runs() -> None:
    with pytest.raises(BackendUnavailable, match=r"\[hosts.nas\]"):
        await HostCommands({}).run("nas", ["true"], timeout=5, output_limit=1024)


@pytest.mark.anyio
async def test_huge_local_output_is_bounded_to_the_newest_bytes() -> None:
    result = await LocalCommands().run(["seq", "1", "300000"], timeout=60, output_limit=4096)

    assert result.stdout_truncated is True
    assert len(result.stdout.encode()) == 4096
    assert result.stdout.endswith("299999\n300000\n")


def processes_running(argv: list[str]) -> list[int]:
    """Pids of live processes whose command line is exactly `argv` (zombies have none)."""
    wanted = "\0".join(argv) + "\0"
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_text() == wanted:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


async def wait_until_gone(argv: list[str]) -> list[int]:
    """Wait (bounded) until no process runs `argv`; the pids still running at the deadline."""
    with anyio.move_on_after(10):
        while processes_running(argv):  # noqa: ASYNC110 - /proc has no event to wait on
            await anyio.sleep(0.05)
    return processes_running(argv)


@pytest.mark.anyio
async def test_a_local_command_that_outlives_its_timeout_is_killed_with_its_children() -> None:
    marker = str(random.randrange(10**6, 10**7))
    child = ["sleep", marker]
    parent = ["sh", "-c", f"sleep {marker} & sleep {marker}; wait"]

    with pytest.raises(CommandTimedOut, match=r"did not finish within 0\.5 s; it was killed") as caught:
        await LocalCommands().run(parent, timeout=0.5, output_limit=1024)

    assert caught.value.detail["killed"] is True and caught.value.detail["timed_out"] is True
    assert await wait_until_gone(child) == []
    assert await wait_until_gone(parent) == []


@pytest.mark.anyio
async def test_processes_running_finds_a_live_process() -> None:
    marker = str(random.randrange(10**6, 10**7))
    async with await anyio.open_process(["sleep", marker]) as proc:
        try:
            with anyio.move_on_after(10):  # until the child has exec'd sleep (before that it is a copy of Python)
                while not processes_running(["sleep", marker]):  # noqa: ASYNC110 - /proc has no event
                    await anyio.sleep(0.01)
            assert processes_running(["sleep", marker]) == [proc.pid]
        finally:
            proc.kill()

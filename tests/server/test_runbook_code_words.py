"""A placeholder never goes where a program reads code: the configuration refuses it, naming the runbook and the key
and showing the safe pattern, and the safe patterns it shows keep a value inert when they run."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from argobox.adapters.commands import LocalCommands
from argobox.server.config.hosts import fill
from argobox.server.config.model import Config, ConfigError, parse_config

pytestmark = pytest.mark.anyio

SHELL_FIX = 'argv = ["sh", "-c", "echo \\"$1\\"", "sh", "{x}"]'


def load(argv: list[str], *, key: str = "argv", dash: bool = False) -> Config:
    runbook: dict[str, Any] = {
        "description": "Show a value",
        "argv": argv if key == "argv" else ["true", "{x}"],
        "params": {"x": {"pattern": "^.*$", "allow_leading_dash": dash}},
        "kind": "read",
    }
    if key == "preview_argv":
        runbook["preview_argv"] = argv
    return parse_config(
        {"docker": {"simulated_lab": "lab.json"}, "runbooks": {"show": runbook}, "agents": {"openclaw": {}}},
        Path("/etc/argobox/argobox.toml"),
    )


def error_of(argv: list[str], **kwargs: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        load(argv, **kwargs)
    return str(caught.value)


def test_a_placeholder_in_a_shell_script_is_refused_naming_the_runbook_the_key_and_the_safe_pattern() -> None:
    message = error_of(["sh", "-c", "echo {x}"])

    assert "runbooks.show: argv[2]: placeholder {x} is in the code sh runs (its script after -c)" in message
    assert message.endswith(SHELL_FIX)


@pytest.mark.parametrize(
    ("argv", "index"),
    [
        pytest.param(["bash", "-c", "{x}"], 2, id="the-whole-script"),
        pytest.param(["/bin/dash", "-ec", "echo {x}"], 2, id="flag-cluster"),
        pytest.param(["bash", "-o", "pipefail", "-c", "echo {x}"], 4, id="option-before-c"),
        pytest.param(["bash", "-c", "-o", "pipefail", "echo {x}"], 4, id="option-after-c"),
        pytest.param(["sh", "-c", "--", "echo {x}"], 3, id="double-dash"),
        pytest.param(["zsh", "-c", "echo {x}"], 2, id="zsh"),
        pytest.param(["ksh", "-c", "echo {x}"], 2, id="ksh"),
        pytest.param(["ash", "-c", "echo {x}"], 2, id="ash"),
        pytest.param(["busybox", "sh", "-c", "echo {x}"], 3, id="busybox-sh"),
        pytest.param(["sudo", "-n", "-u", "backup", "sh", "-c", "tar {x}"], 6, id="sudo"),
        pytest.param(["sudo", "--user=backup", "--", "bash", "-c", "x {x}"], 5, id="sudo-long-options"),
        pytest.param(["doas", "-u", "root", "zsh", "-c", "echo {x}"], 5, id="doas"),
        pytest.param(["env", "-i", "PATH=/bin", "sh", "-c", "echo {x}"], 5, id="env"),
        pytest.param(["nice", "-n", "10", "sh", "-c", "echo {x}"], 5, id="nice"),
        pytest.param(["nohup", "sh", "-c", "echo {x}"], 3, id="nohup"),
        pytest.param(["timeout", "-s", "KILL", "30", "sh", "-c", "echo {x}"], 6, id="timeout"),
        pytest.param(["sudo", "env", "A=1", "nice", "bash", "-c", "echo {x}"], 6, id="nested-wrappers"),
        pytest.param(["docker", "exec", "web", "sh", "-c", "echo {x}"], 5, id="unknown-wrapper"),
        pytest.param(["su", "backup", "-c", "echo {x}"], 3, id="su-c"),
        pytest.param(["flock", "/run/lock", "-c", "echo {x}"], 3, id="flock-c"),
        pytest.param(["env", "-S", "sh -c 'echo {x}'"], 2, id="env-split-string"),
        pytest.param(["env", "--split-string=sh {x}"], 1, id="env-split-string-long"),
        pytest.param(["bash", "{x}"], 1, id="script-file"),
        pytest.param(["sudo", "-uu", "bash", "{x}"], 3, id="script-file-behind-sudo-as-user-u"),
        pytest.param(["bash", "-{x}", "-c", "true"], 1, id="in-an-option"),
    ],
)
def test_a_placeholder_a_shell_reads_as_code_is_refused(argv: list[str], index: int) -> None:
    message = error_of(argv)

    assert f"runbooks.show: argv[{index}]: placeholder {{x}} " in message
    assert message.endswith(SHELL_FIX)


@pytest.mark.parametrize(
    ("argv", "index", "fix"),
    [
        (["python3", "-c", "print('{x}')"], 2, '"import sys; print(sys.argv[1])", "{x}"]'),
        (["/usr/bin/python3.11", "-Ic", "print({x})"], 2, "sys.argv[1]"),
        (["python3", "-cprint({x})"], 1, "sys.argv[1]"),
        (["python3", "-m", "{x}"], 2, "sys.argv[1]"),
        (["sudo", "python3", "/opt/{x}.py"], 2, "sys.argv[1]"),
        (["perl", "-e", "print '{x}'"], 2, '["perl", "-e", "print $ARGV[0]", "--", "{x}"]'),
        (["perl", "-e", "1;", "-e", "print {x}"], 4, "$ARGV[0]"),
        (["ruby", "-e", "puts '{x}'"], 2, '["ruby", "-e", "puts ARGV[0]", "--", "{x}"]'),
        (["node", "--eval", "console.log('{x}')"], 2, "process.argv[1]"),
        (["node", "--eval=console.log('{x}')"], 1, "process.argv[1]"),
        (["php", "-r", "echo '{x}';"], 2, SHELL_FIX),
        (["awk", '{ print "{x}" }'], 1, '["awk", "BEGIN { print ARGV[1] }", "{x}"]'),
        (["awk", "-v", "v={x}", "BEGIN { print v }"], 2, "ARGV[1]"),
        (["sed", "s/a/{x}/"], 1, SHELL_FIX),
        (["sed", "-n", "-e", "s/a/{x}/p", "file"], 3, SHELL_FIX),
    ],
)
def test_a_placeholder_in_the_code_of_another_interpreter_is_refused(argv: list[str], index: int, fix: str) -> None:
    message = error_of(argv)

    assert f"runbooks.show: argv[{index}]: placeholder {{x}} " in message
    assert "so a value could run code of its own; keep the code fixed" in message
    assert fix in message


def test_ssh_as_the_program_may_not_carry_a_value_anywhere_in_its_remote_command() -> None:
    direct = error_of(["ssh", "nas", "ls", "{x}"])
    sudo = error_of(["sudo", "-u", "backup", "ssh", "-p", "2222", "nas", "cat /srv/{x}"])
    env = error_of(["env", "LC_ALL=C", "ssh", "nas", "ls", "{x}"])

    assert "runbooks.show: argv[3]: placeholder {x} is in the command ssh hands to the remote shell" in direct
    assert 'declare the machine as [hosts.NAME] and set host = "NAME"' in direct
    assert "argv[7]: placeholder {x} is in the command ssh hands to the remote shell" in sudo
    assert "argv[5]: placeholder {x} is in the command ssh hands to the remote shell" in env


def test_the_program_a_wrapper_runs_must_be_fixed() -> None:
    assert "argv[1]: placeholder {x} names the program sudo runs, which must be fixed" in error_of(["sudo", "{x}"])


def test_a_value_that_could_become_an_option_of_the_interpreter_needs_a_double_dash_before_it() -> None:
    message = error_of(["perl", "-e", "print @ARGV", "{x}"], dash=True)

    assert "argv[3]: placeholder {x} could be read as an option of perl, as its param allows a leading '-'" in message
    assert load(["perl", "-e", "print @ARGV", "--", "{x}"], dash=True).runbooks["show"].argv[-1] == "{x}"


def test_preview_argv_follows_the_same_rule() -> None:
    assert "runbooks.show: preview_argv[2]: placeholder {x} is in the code sh runs" in error_of(
        ["sh", "-c", "cat {x}"], key="preview_argv"
    )


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["sh", "-c", 'echo "$1"', "sh", "{x}"], id="shell-argument"),
        pytest.param(["bash", "-o", "pipefail", "-c", 'echo "$1"', "bash", "{x}"], id="shell-options-then-argument"),
        pytest.param(["sudo", "-n", "sh", "-c", 'echo "$1"', "sh", "/srv/{x}"], id="sudo-shell-argument"),
        pytest.param(["env", "X={x}", "sh", "-c", 'echo "$X"'], id="env-assignment"),
        pytest.param(["python3", "-c", "import sys; print(sys.argv[1])", "{x}"], id="python-argument"),
        pytest.param(["python3", "/opt/tool.py", "--name", "{x}"], id="python-script-argument"),
        pytest.param(["perl", "-e", "print $ARGV[0]", "{x}"], id="perl-argument"),
        pytest.param(["awk", "BEGIN { print ARGV[1] }", "{x}"], id="awk-argument"),
        pytest.param(["sed", "-n", "s/^/> /p", "/srv/{x}"], id="sed-file"),
        pytest.param(["sudo", "-n", "/usr/bin/systemctl", "restart", "{x}"], id="sudo-program-argument"),
        pytest.param(["timeout", "{x}", "sleep", "5"], id="timeout-duration"),
        pytest.param(["find", "/srv/scratch/{x}", "-type", "f"], id="part-of-a-plain-word"),
        pytest.param(["grep", "-c", "sh", "{x}"], id="an-interpreter-name-as-data"),
        pytest.param(["apt-get", "install", "-y", "ssh", "{x}"], id="ssh-as-data"),
    ],
)
def test_values_passed_as_arguments_after_the_code_are_accepted(argv: list[str]) -> None:
    assert load(argv).runbooks["show"].argv == argv


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["sh", "-c", 'printf "%s\\n" "$1"', "sh", "{x}"], id="sh"),
        pytest.param([sys.executable, "-c", "import sys; print(sys.argv[1])", "{x}"], id="python"),
        pytest.param(["perl", "-e", 'print "$ARGV[0]\\n"', "--", "{x}"], id="perl"),
        pytest.param(["awk", "BEGIN { print ARGV[1] }", "{x}"], id="awk"),
    ],
)
async def test_the_safe_patterns_keep_a_hostile_value_one_inert_argument(argv: list[str], tmp_path: Path) -> None:
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} is not installed")
    sentinel = tmp_path / "pwned"
    hostile = f"hi; touch {sentinel} $(touch {sentinel}) `touch {sentinel}` '\" > {sentinel}"
    runbook = load(argv).runbooks["show"]

    result = await LocalCommands().run(fill(runbook.argv, {"x": hostile}), timeout=30, output_limit=4096)

    assert result.exit_status == 0 and result.stdout == hostile + "\n"
    assert not sentinel.exists()

"""The words of a runbook's argv that a program reads as code, where a parameter value must never go.

A value always fills (part of) one argv word, and no shell runs on ArgoBox's side. That keeps a value inert only as
long as no program reads its word as code: `["sh", "-c", "echo {x}"]` hands the value to a shell as part of its
script, and `x = "hi; id"` then runs `id`. The rule (docs/runbooks.md):

    The code an interpreter runs is fixed in the configuration; a value reaches it only as an argument after it,
    e.g. argv = ["sh", "-c", "echo \"$1\"", "sh", "{x}"].

Concretely, for each interpreter ArgoBox knows (`INTERPRETERS`: shells, python, perl, ruby, node, php, awk, sed,
su...) that appears as a word of the argv, no placeholder may be in:
- its options up to its code (an option can carry code: `python -c...`, `perl -e...`, `php -d auto_prepend_file=`);
- its code: the argument of a code option (`python -c`, `perl -e`, `node -e`...), or for a shell given `-c`, its
  first operand;
- the script it runs (its first operand without a code option) when it is the runbook's program: argv[0], or the
  program run by a wrapper ArgoBox knows (`WRAPPERS`: sudo, doas, env, nice, nohup, timeout...);
- a word that starts with a placeholder whose param allows a leading '-', while the interpreter still reads options.
An interpreter anywhere else in the argv (behind a wrapper ArgoBox does not know, e.g. `docker exec c sh -c ...`) is
checked when one of its code options follows it. `ssh` as the program hands all its remaining words to the remote
shell as one line, so none of them may hold a placeholder (declare the machine as `[hosts.NAME]` instead). The
wrapper run by a known wrapper must be fixed too, like argv[0]. This recognises the common ways to run code, not
every one (`find -exec`, `xargs`, `watch` are not): the rule is the operator's to follow for those.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
"""`{name}` in an argv word: replaced by the value of param `name` (the rest of the word stays as written)."""
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
SHELL_PATTERN = 'argv = ["sh", "-c", "echo \\"$1\\"", "sh", "{param}"]'
"""The safe way to give a shell a value (as its $1), with the placeholder's name filled in."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Interpreter:
    """How a program that runs code reads its options: which ones carry code, which take an argument."""

    code_flag: str = ""
    """Short flags after which the first operand is the code (a shell's -c)."""
    code_options: str = ""
    """Short options whose argument is code (python -c, perl -e)."""
    program_options: str = ""
    """Short options whose argument names the program to run (python -m, awk -f)."""
    with_argument: str = ""
    """Other short options that take an argument (the rest of the word, or the next word)."""
    attached: str = ""
    """Short options whose optional argument can only be the rest of the word (perl -Mstrict)."""
    ends_options: str = ""
    """Options after whose argument every word is an argument of the program (python -c CODE, -m MODULE)."""
    long_code: frozenset[str] = frozenset()
    long_program: frozenset[str] = frozenset()
    long_with_argument: frozenset[str] = frozenset()
    plus_options: bool = False
    """Options may also start with '+' (shells: +o, +x)."""
    permutes: bool = False
    """Options may follow operands (GNU getopt: sed, su)."""
    operand_is_program: bool = True
    """Without a code option, the first operand is the script to run (not for su, whose operand is a user)."""
    example: str = SHELL_PATTERN
    """The safe pattern shown in the error, with `{param}` for the placeholder."""


_SHELL = Interpreter(
    code_flag="c", with_argument="oO", plus_options=True, long_with_argument=frozenset({"rcfile", "init-file"})
)
_PYTHON = Interpreter(
    code_options="c",
    program_options="m",
    with_argument="WX",
    ends_options="cm",
    long_with_argument=frozenset({"check-hash-based-pycs"}),
    example='argv = ["python3", "-c", "import sys; print(sys.argv[1])", "{param}"]',
)
_PERL = Interpreter(
    code_options="eE",
    with_argument="I",
    attached="0CdDFilMmxV",
    example='argv = ["perl", "-e", "print $ARGV[0]", "--", "{param}"]',
)
_RUBY = Interpreter(
    code_options="e",
    with_argument="IrCE",
    attached="0FKTWx",
    example='argv = ["ruby", "-e", "puts ARGV[0]", "--", "{param}"]',
)
_NODE = Interpreter(
    code_options="ep",
    with_argument="rC",
    long_code=frozenset({"eval", "print"}),
    long_with_argument=frozenset({"require", "import", "loader", "experimental-loader", "input-type", "conditions"}),
    example='argv = ["node", "-e", "console.log(process.argv[1])", "--", "{param}"]',
)
_PHP = Interpreter(code_options="rBRE", program_options="fF", with_argument="cdzt")
_AWK = Interpreter(
    code_options="e",
    program_options="f",
    with_argument="FvilW",
    long_code=frozenset({"source"}),
    long_program=frozenset({"file"}),
    long_with_argument=frozenset({"assign", "field-separator", "include", "load"}),
    example='argv = ["awk", "BEGIN { print ARGV[1] }", "{param}"]',
)
_SED = Interpreter(
    code_options="e",
    program_options="f",
    with_argument="l",
    long_code=frozenset({"expression"}),
    long_program=frozenset({"file"}),
    long_with_argument=frozenset({"line-length"}),
    permutes=True,
)
_SU = Interpreter(
    code_options="c",
    with_argument="gGsw",
    long_code=frozenset({"command", "session-command"}),
    long_with_argument=frozenset({"group", "supp-group", "shell", "whitelist-environment"}),
    permutes=True,
    operand_is_program=False,
)
_FLOCK = Interpreter(
    code_options="c", with_argument="Ew", long_code=frozenset({"command"}), permutes=True, operand_is_program=False
)
_FISH = Interpreter(code_options="cC", with_argument="dfo", long_code=frozenset({"command", "init-command"}))

_SHELLS = "sh bash dash zsh ash ksh ksh93 mksh lksh pdksh oksh loksh yash posh rbash csh tcsh"
INTERPRETERS: dict[str, Interpreter] = {
    **dict.fromkeys(_SHELLS.split(), _SHELL),
    "fish": _FISH,
    "node": _NODE,
    "nodejs": _NODE,
    **dict.fromkeys(("awk", "gawk", "mawk", "nawk"), _AWK),
    **dict.fromkeys(("sed", "gsed"), _SED),
    **dict.fromkeys(("su", "runuser"), _SU),
    "flock": _FLOCK,
}
"""Interpreters by the name of their program; python, perl, ruby and php also with a version (python3.11)."""
_VERSIONED = {"python": _PYTHON, "pypy": _PYTHON, "perl": _PERL, "ruby": _RUBY, "php": _PHP}
_VERSION = re.compile(r"^(?P<name>[a-z]+?)(?:\d+(?:\.\d+)*)?$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Wrapper:
    """A program that runs another program, the rest of the argv (sudo, env, timeout...)."""

    with_argument: str = ""
    long_with_argument: frozenset[str] = frozenset()
    operands: int = 0
    """Operands before the program (timeout's duration, chroot's new root)."""
    assignments: bool = False
    """NAME=VALUE words may come before the program (env, sudo)."""
    code_options: str = ""
    """Options whose argument is a command line the wrapper splits into words (env -S)."""
    long_code: frozenset[str] = frozenset()


WRAPPERS: dict[str, Wrapper] = {
    "sudo": Wrapper(
        with_argument="CDghpRrTtUu",
        long_with_argument=frozenset(
            {"chdir", "close-from", "group", "host", "prompt", "chroot", "role", "type", "command-timeout", "user"}
        ),
        assignments=True,
    ),
    "doas": Wrapper(with_argument="Cu"),
    "env": Wrapper(
        with_argument="uCS",
        long_with_argument=frozenset({"unset", "chdir", "split-string"}),
        assignments=True,
        code_options="S",
        long_code=frozenset({"split-string"}),
    ),
    "nice": Wrapper(with_argument="n", long_with_argument=frozenset({"adjustment"})),
    "nohup": Wrapper(),
    "timeout": Wrapper(with_argument="sk", long_with_argument=frozenset({"signal", "kill-after"}), operands=1),
    "ionice": Wrapper(with_argument="cn", long_with_argument=frozenset({"class", "classdata"})),
    "setsid": Wrapper(),
    "stdbuf": Wrapper(with_argument="ioe", long_with_argument=frozenset({"input", "output", "error"})),
    "chroot": Wrapper(long_with_argument=frozenset({"userspec", "groups"}), operands=1),
    "time": Wrapper(with_argument="fo", long_with_argument=frozenset({"format", "output"})),
    "busybox": Wrapper(),
}
"""Wrappers whose program (the word after their options) ArgoBox finds, to check it as the runbook's program."""


_CODE = "is in the code {program} runs"
_OPTION = "is in an option of {program}, which can carry code"
_SCRIPT = "names the script or module {program} runs"
_KEEP_FIXED = "keep the code fixed and pass the value as a word of its own after it, e.g. "


def program_name(word: str) -> str:
    return word.rsplit("/", 1)[-1]


def interpreter(word: str) -> Interpreter | None:
    """The interpreter `word` runs (by its program's name, `python3.11` as `python`), or None."""
    name = program_name(word)
    if name in INTERPRETERS:
        return INTERPRETERS[name]
    match = _VERSION.fullmatch(name)
    return _VERSIONED.get(match["name"]) if match else None


def code_problems(key: str, words: Sequence[str], dash_params: Collection[str] = ()) -> list[str]:
    """One error per word of the argv template `words` (config key `key`) that holds a placeholder where a program
    reads code (the module's rule); `dash_params` are the params that allow a value starting with '-'."""
    problems: list[str] = []
    for index, why in sorted(fixed_words(words, dash_params).items()):
        match = PLACEHOLDER.search(words[index])
        if match is not None:
            problems.append(f"{key}[{index}]: placeholder {match[0]} {why.replace('{param}', match[0])}")
    return problems


def fixed_words(words: Sequence[str], dash_params: Collection[str] = ()) -> dict[int, str]:
    """The indexes of the words that must be fixed text, each with why and how to fix it (`{param}` stands for the
    placeholder's name)."""
    fixed: dict[int, str] = {}
    if not words:
        return fixed
    programs = {0}
    index = 0
    while index < len(words) and (wrapper := WRAPPERS.get(program_name(words[index]))) is not None:
        name, code = program_name(words[index]), list[int]()
        index = _skip_wrapper(words, index, wrapper, code)
        for word in code:
            fixed[word] = (
                f"is in a command line that {name} splits into words and runs, so a value could add commands; "
                + (_KEEP_FIXED + SHELL_PATTERN)
            )
        if index < len(words):
            programs.add(index)
            fixed[index] = (
                f"names the program {name} runs, which must be fixed like argv[0]; declare a runbook per program"
            )
    for index in programs:
        if program_name(words[index]) == "ssh":
            for later in range(index + 1, len(words)):
                fixed.setdefault(later, _SSH)
    for index, word in enumerate(words):
        spec = interpreter(word) if PLACEHOLDER.search(word) is None else None
        if spec is not None:
            for at, why in _interpreter_words(words, index, spec, index in programs, dash_params).items():
                fixed.setdefault(at, why)
    return fixed


_SSH = (
    "is in the command ssh hands to the remote shell as one line, so a value could add commands; declare the "
    'machine as [hosts.NAME] and set host = "NAME" in the runbook instead, which quotes every word'
)


def _skip_wrapper(words: Sequence[str], start: int, wrapper: Wrapper, code: list[int]) -> int:
    """The index of the program run by the wrapper at `start`; the indexes of code arguments go into `code`."""
    index = start + 1
    while index < len(words):
        word = words[index]
        if word == "--":
            index += 1
            break
        if word.startswith("--"):
            name, has_value, _ = word[2:].partition("=")
            if name in wrapper.long_code:
                code.append(index if has_value else index + 1)
            index += 2 if not has_value and name in wrapper.long_with_argument else 1
        elif word.startswith("-") and len(word) > 1:
            at = next((i for i, c in enumerate(word) if i and c in wrapper.with_argument), None)
            attached = at is not None and at < len(word) - 1  # `-ubackup`: the argument is the rest of the word
            if at is not None and word[at] in wrapper.code_options:
                code.append(index if attached else index + 1)
            index += 2 if at is not None and not attached else 1
        elif wrapper.assignments and _ASSIGNMENT.match(word):
            index += 1
        else:
            break
    return min(index + wrapper.operands, len(words))


@dataclass(slots=True)
class _Scan:
    """An interpreter's options, walked: the words that must be fixed, and how it was told to run code."""

    spec: Interpreter
    words: Sequence[str]
    dash_params: Collection[str]
    fixed: dict[int, str] = field(default_factory=dict[int, str])
    code_given: bool = False
    """A code option (python -c) or a program option (python -m) was given."""
    flag_given: bool = False
    """The code flag (a shell's -c) was given: the first operand is the code."""
    first_operand: int | None = None

    def is_option(self, word: str) -> bool:
        if len(word) > 1 and (word[0] == "-" or (self.spec.plus_options and word[0] == "+")):
            return True
        match = PLACEHOLDER.match(word)
        return match is not None and match[1] in self.dash_params


def _interpreter_words(
    words: Sequence[str], start: int, spec: Interpreter, is_program: bool, dash_params: Collection[str]
) -> dict[int, str]:
    """The words the interpreter at `start` reads as code or as options (see the module's rule)."""
    scan = _Scan(spec, words, dash_params)
    _walk(scan, start + 1)
    if scan.first_operand is not None:
        if scan.flag_given:
            scan.fixed.setdefault(scan.first_operand, _CODE + " (its script after -c)")
        elif not scan.code_given and is_program and spec.operand_is_program:
            scan.fixed.setdefault(scan.first_operand, _SCRIPT)
    if not (is_program or scan.code_given or scan.flag_given):
        return {}
    program = program_name(words[start])
    return {
        index: why.format(program=program)
        + (
            ""
            if why.startswith("could be")
            else ", so a value could run code of its own; " + _KEEP_FIXED + spec.example
        )
        for index, why in scan.fixed.items()
    }


def _walk(scan: _Scan, index: int) -> None:
    """Walk the interpreter's options from `index`, recording in `scan` the words that must be fixed."""
    words = scan.words
    while index < len(words):
        word = words[index]
        if word == "--":
            if scan.first_operand is None and index + 1 < len(words):
                scan.first_operand = index + 1
            return
        if not scan.is_option(word):
            scan.first_operand = index if scan.first_operand is None else scan.first_operand
            if not scan.spec.permutes:
                return
            index += 1
        elif PLACEHOLDER.match(word):
            scan.fixed[index] = (
                "could be read as an option of {program}, as its param allows a leading '-'; put \"--\" before it"
            )
            index += 1
        else:
            scan.fixed[index] = _OPTION
            index, ended = _option(scan, index)
            if ended:
                return


def _option(scan: _Scan, index: int) -> tuple[int, bool]:
    """Read the option word at `index`: the index after it (and its argument), and whether the options ended."""
    word, spec = scan.words[index], scan.spec
    has_next = index + 1 < len(scan.words)
    if word.startswith("--"):
        name, has_value, _ = word[2:].partition("=")
        code = name in spec.long_code or name in spec.long_program
        scan.code_given |= code
        if not has_value and has_next and (code or name in spec.long_with_argument):
            scan.fixed[index + 1] = _CODE if code else _OPTION
            return index + 2, False
        return index + 1, False
    for position, letter in enumerate(word[1:], start=2):
        scan.flag_given |= letter in spec.code_flag
        code = letter in spec.code_options or letter in spec.program_options
        if code or letter in spec.with_argument:
            scan.code_given |= code
            if position == len(word) and has_next:
                scan.fixed[index + 1] = (_SCRIPT if letter in spec.program_options else _CODE) if code else _OPTION
                return index + 2, letter in spec.ends_options
            return index + 1, letter in spec.ends_options
        if letter in spec.attached:
            break
    return index + 1, False

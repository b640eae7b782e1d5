"""Sphinx extension: read the project's docstrings as the plain numpy-style text they are.

In reStructuredText ``|bias|`` is a substitution reference and ``params_`` a hyperlink
reference; in these docstrings they mean an absolute value and an attribute name, and
with warnings as errors either would fail the build.  Outside inline literals, doctest
lines and literal blocks, both are escaped before numpydoc parses the sections.
"""

from __future__ import annotations

import re

_LITERAL = re.compile(r"(``.+?``|`[^`]+`)")
_BARS = re.compile(r"(?<![\w\\|])\|(?=[^\s|])([^|`\n]*?[^\s|\\])\|(?![\w|])")
_TRAILING_UNDERSCORE = re.compile(r"(?<![\w`\\])([A-Za-z]\w*?)_(?=[\s).,;:]|$)")


def _escape_text(text: str) -> str:
    parts = _LITERAL.split(text)
    for k in range(0, len(parts), 2):  # even parts lie outside literals
        parts[k] = _BARS.sub(r"\\|\1\\|", parts[k])
        parts[k] = _TRAILING_UNDERSCORE.sub(r"\1\\_", parts[k])
    return "".join(parts)


def escape_plain_docstring(lines: list[str]) -> list[str]:
    """Escape ``|x|`` and ``name_`` outside literals, doctests and literal blocks."""
    out, literal_indent = [], None
    for line in lines:
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if literal_indent is not None and stripped and indent <= literal_indent:
            literal_indent = None
        if literal_indent is not None or stripped.startswith((">>>", "...")) or not stripped:
            out.append(line)
            continue
        out.append(_escape_text(line))
        if stripped.endswith("::"):
            literal_indent = indent
    return out


def _process_docstring(app, what, name, obj, options, lines: list[str]) -> None:
    lines[:] = escape_plain_docstring(lines)


def setup(app) -> dict[str, bool]:
    # priority 100: before numpydoc (500) turns the sections into reST
    app.connect("autodoc-process-docstring", _process_docstring, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

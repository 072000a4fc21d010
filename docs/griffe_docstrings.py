"""A griffe extension for the API reference: docstrings as a reader of the source sees them.

- A few classes complete their docstrings when their module is imported (``LSTM``, ``GRU`` and
  ``RNN`` share one argument list; the Keras-style layers one paragraph). Griffe reads the source
  without running it, so a class's docstring is replaced by the live one where the two differ.
  Only the modules that define classes are imported.
- The docstrings draw shape tables as reStructuredText simple tables (``=====  =====`` borders).
  Markdown would run their rows together into one paragraph, so each table becomes a
  preformatted block, as it reads in the source.
"""

from __future__ import annotations

import importlib
import inspect
import re
import textwrap

import griffe

TABLE_BORDER = re.compile(r"^\s*=+(\s+=+)+\s*$")


def preformat_tables(text: str) -> str:
    """``text`` with each simple table (from a border line to the next blank line) fenced as text, dedented."""
    lines, out, index = text.splitlines(), [], 0
    while index < len(lines):
        if not TABLE_BORDER.match(lines[index]):
            out.append(lines[index])
            index += 1
            continue
        end = index
        while end < len(lines) and lines[end].strip():
            end += 1
        table = textwrap.dedent("\n".join(lines[index:end])).splitlines()
        out += ["", "```text", *table, "```", ""]  # at the margin: indented, Markdown would show the fences
        index = end
    return "\n".join(out)


class ReadableDocstrings(griffe.Extension):
    """Live class docstrings where the module completes them; simple tables preformatted."""

    def on_object(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is None:
            return
        if obj.is_class:
            live = inspect.getdoc(getattr(importlib.import_module(obj.module.path), obj.name, None))
            if live and live != obj.docstring.value:
                obj.docstring.value = live
        obj.docstring.value = preformat_tables(obj.docstring.value)

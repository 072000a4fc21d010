"""Tagged sentences from CoNLL-U files (Universal Dependencies), and tagged sentences back to CoNLL-U.

A CoNLL-U file is a list of sentences separated by blank lines. Each sentence has optional comment
lines (``# ...``) and then one line per token of 10 tab-separated columns:

=====  ======  ======  ======  ======  =====  ====  ======  ====  ====
ID     FORM    LEMMA   UPOS    XPOS    FEATS  HEAD  DEPREL  DEPS  MISC
=====  ======  ======  ======  ======  =====  ====  ======  ====  ====
1-2    don't   _       _       _       _      _     _       _     _
1      do      do      AUX     VBP     ...    3     aux     ...   ...
2      n't     not     PART    RB      ...    3     advmod  ...   ...
3      go      go      VERB    VB      ...    0     root    ...   ...
3.1    went    go      VERB    VBD     ...    _     _       ...   ...
=====  ======  ======  ======  ======  =====  ====  ======  ====  ====

Which lines are words to tag:

===============  ==============  ============================================================
ID               what            read as
===============  ==============  ============================================================
``3``            a word          a word: its FORM and its UPOS (or XPOS) column
``1-2``          multiword token skipped (the surface token "don't"; its words follow on 1, 2)
``3.1``          empty node      skipped (an elided word of the enhanced graph, not in the text)
===============  ==============  ============================================================

Errors are :class:`TreebankError` (a ``ValueError``) whose message starts ``{path}:{line}:``, so an
editor or a terminal can jump to it. Comments, several blank lines, blank lines at the start or the
end, Windows line endings, a byte-order mark and a missing final newline are all fine.

Columns are split on tabs as the CoNLL-U specification says (UD v2 allows spaces inside FORM; the
``conllu`` package also splits on two spaces, so its line splitter is not used); the ``conllu``
package (``pip install 'lstmkit[data]'``) parses the ID column, with its grammar of words, ranges and
decimals.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

from ..io import write_text
from . import require

COLUMNS = ("upos", "xpos")
_COLUMN_INDEX = {"upos": 3, "xpos": 4}
_MISSING = ("", "_")
# A first token line of a CoNLL-U file: an integer, range or decimal id, then a tab.
_CONLLU_ID = re.compile(r"\d+([-.]\d+)?\t")


class TaggedSentence(NamedTuple):
    """One sentence's words and their tags; ``line`` is where its block starts in the file (1-based)."""

    words: tuple[str, ...]
    tags: tuple[str, ...]
    line: int


class TreebankError(ValueError):
    """A CoNLL-U or tokenized file that cannot be read; the message starts with ``{path}:{line}:``.

    ``path`` and ``line`` are attributes too (``line`` is ``None`` when the file cannot be opened).
    """

    def __init__(self, path: str | Path, line: int | None, message: str):
        self.path = str(path)
        self.line = line
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {message}")


def _check_column(column: str) -> int:
    if column not in _COLUMN_INDEX:
        raise ValueError(f"treebank: column must be one of {COLUMNS}, got {column!r}")
    return _COLUMN_INDEX[column]


def _read_lines(path: str | Path) -> list[str]:
    """The file's lines without line endings (``\\n`` or ``\\r\\n``); a clear error when it cannot be read."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise TreebankError(path, None, "file does not exist") from None
    except IsADirectoryError:
        raise TreebankError(path, None, "is a directory, not a file") from None
    except OSError as error:
        raise TreebankError(path, None, f"cannot be read ({error.strerror or error})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise TreebankError(path, line, f"not UTF-8 text (byte {data[error.start]:#04x})") from None
    # split("\n"), not splitlines(): a FORM may hold characters that splitlines() breaks at (U+2028, ...).
    return [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]


def _blocks(lines: list[str]) -> list[list[tuple[int, str]]]:
    """Sentence blocks: runs of non-blank lines, each line with its 1-based number."""
    blocks: list[list[tuple[int, str]]] = []
    current: list[tuple[int, str]] = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            current.append((number, line))
        elif current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    return blocks


def _parse_block(path, block, column_index: int | None, column: str | None, parse_id) -> TaggedSentence | None:
    """A block's words and tags (``tags`` empty when ``column_index`` is None); None for a comments-only block."""
    words: list[str] = []
    tags: list[str] = []
    for number, line in block:
        if line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 10:
            raise TreebankError(
                path, number, f"a token line needs 10 tab-separated columns, got {len(fields)}: {line[:60]!r}"
            )
        try:
            token_id = parse_id(fields[0])
        except Exception as error:  # conllu's ParseException, or anything its id grammar raises
            raise TreebankError(path, number, f"bad ID {fields[0]!r}: {error}") from None
        if token_id is None:
            raise TreebankError(path, number, f"bad ID {fields[0]!r}: an integer, a range (3-4) or a decimal (5.1)")
        if not isinstance(token_id, int):
            continue  # a multiword token (3, '-', 4) or an empty node (5, '.', 1): not a word
        if token_id != len(words) + 1:
            raise TreebankError(path, number, f"word ID {token_id} out of order: expected {len(words) + 1}")
        if fields[1] == "":
            raise TreebankError(path, number, f"word {token_id} has an empty FORM")
        words.append(fields[1])
        if column_index is not None:
            tag = fields[column_index].strip()
            if tag in _MISSING:
                raise TreebankError(path, number, f"word {token_id} ({fields[1]!r}) has no {column.upper()} ('_')")
            tags.append(tag)
    if not words:
        first_token = next((number for number, line in block if not line.startswith("#")), None)
        if first_token is None:
            return None  # comments only (e.g. a document's metadata apart from its sentences)
        raise TreebankError(path, first_token, "a sentence with no words (only multiword tokens or empty nodes)")
    return TaggedSentence(tuple(words), tuple(tags), block[0][0])


def _parse(path, lines: list[str], column: str | None) -> list[TaggedSentence]:
    parser = require("conllu.parser", "conllu", "CoNLL-U treebank")
    column_index = None if column is None else _check_column(column)
    sentences = []
    for block in _blocks(lines):
        sentence = _parse_block(path, block, column_index, column, parser.parse_id_value)
        if sentence is not None:
            sentences.append(sentence)
    if not sentences:
        raise TreebankError(path, 1, "no sentences: the file is empty or holds only comments")
    return sentences


def read_tagged(path: str | Path, column: str = "upos") -> list[TaggedSentence]:
    """Every sentence of a CoNLL-U file as ``TaggedSentence(words, tags, line)``.

    ``column`` is ``"upos"`` (the 17 universal tags, column 4) or ``"xpos"`` (the treebank's own tags,
    column 5). Multiword-token lines and empty nodes are skipped; a word whose tag is ``_`` is an error.
    """
    _check_column(column)
    return _parse(path, _read_lines(path), column)


def _looks_like_conllu(lines: list[str]) -> bool:
    """True when the first line that is neither blank nor a comment is a 10-column token line."""
    for line in lines:
        if not line.strip() or line.startswith("#"):
            continue
        return bool(_CONLLU_ID.match(line)) and line.count("\t") == 9
    return False


def read_tokenized(path: str | Path) -> list[list[str]]:
    """Sentences to tag: each a list of words.

    ==========================  ===============================================================
    file                        read as
    ==========================  ===============================================================
    plain text                  one sentence per line, tokens separated by whitespace;
                                blank lines skipped
    CoNLL-U                     its words (multiword tokens and empty nodes skipped); tag
                                columns ignored, so ``_`` there is fine
    ==========================  ===============================================================

    A file is CoNLL-U when its first line that is neither blank nor ``# ...`` starts with an
    integer, range or decimal id and has 10 tab-separated columns.
    """
    lines = _read_lines(path)
    if _looks_like_conllu(lines):
        return [list(sentence.words) for sentence in _parse(path, lines, None)]
    sentences = [line.split() for line in lines if line.strip()]
    if not sentences:
        raise TreebankError(path, 1, "no sentences: the file is empty")
    return sentences


def format_tagged(sentences: list[list[str]], tags: list[list[str]], column: str = "upos") -> str:
    """The CoNLL-U text :func:`write_tagged` writes (ID, FORM, the tag; ``_`` elsewhere)."""
    index = _check_column(column)
    if len(sentences) != len(tags):
        raise ValueError(f"write_tagged: {len(sentences)} sentences but {len(tags)} tag lists")
    parts = []
    for number, (words, sentence_tags) in enumerate(zip(sentences, tags), start=1):
        if len(words) != len(sentence_tags):
            raise ValueError(f"write_tagged: sentence {number} has {len(words)} words but {len(sentence_tags)} tags")
        if not words:
            raise ValueError(f"write_tagged: sentence {number} has no words")
        lines = [f"# text = {' '.join(words)}"]
        for i, (word, tag) in enumerate(zip(words, sentence_tags), start=1):
            if not word or any(c in word for c in "\t\n\r"):
                raise ValueError(f"write_tagged: sentence {number}, word {i}: {word!r} is empty or holds a tab/newline")
            if tag in _MISSING or any(c.isspace() for c in tag):
                raise ValueError(f"write_tagged: sentence {number}, word {i}: bad tag {tag!r}")
            fields = [str(i), word] + ["_"] * 8
            fields[index] = tag
            lines.append("\t".join(fields))
        parts.append("\n".join(lines) + "\n\n")
    return "".join(parts)


def write_tagged(path: str | Path, sentences: list[list[str]], tags: list[list[str]], column: str = "upos") -> None:
    """Write tagged sentences as CoNLL-U, atomically.

    Each sentence gets a ``# text = w1 w2 ...`` comment, one line per word (ID, FORM, the tag in the
    UPOS or XPOS column, ``_`` in the other eight columns) and a blank line after it.
    """
    write_text(path, format_tagged(sentences, tags, column))

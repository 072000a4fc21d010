"""CoNLL-U reading and writing (lstmkit.data.treebank_files) and the most-frequent-tag baseline."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest

from lstmkit.data.tagging import baseline_accuracy, most_frequent_tags, predict_most_frequent
from lstmkit.data.treebank_files import (
    COLUMNS,
    TaggedSentence,
    TreebankError,
    read_tagged,
    read_tokenized,
    write_tagged,
)

conllu = pytest.importorskip("conllu")

GUM_DEV = Path("/work/shared/data/ud-english-gum/en_gum-ud-dev.conllu")


def row(token_id, form, upos="_", xpos="_"):
    return "\t".join([str(token_id), form, "_", upos, xpos, "_", "_", "_", "_", "_"])


# A multiword token (1-2 "Don't" = "Do" "n't"), an empty node (3.1), comments, several blank lines.
SAMPLE = "\n".join(
    [
        "",
        "# newdoc id = doc1",
        "# sent_id = 1",
        "# text = Don't go",
        row("1-2", "Don't"),
        row(1, "Do", "AUX", "VBP"),
        row(2, "n't", "PART", "RB"),
        row(3, "go", "VERB", "VB"),
        row("3.1", "went", "VERB", "VBD"),
        row(4, "!", "PUNCT", "."),
        "",
        "",
        "# sent_id = 2",
        row(1, "Dogs", "NOUN", "NNS"),
        row(2, "bark", "VERB", "VBP"),
        "",
        "",
    ]
)


def write(tmp_path: Path, text: str, name: str = "sample.conllu", newline: str = "\n") -> Path:
    path = tmp_path / name
    path.write_bytes(text.replace("\n", newline).encode("utf-8"))
    return path


def where(path: Path, line: int) -> str:
    return re.escape(f"{path}:{line}:")


def test_multiword_tokens_empty_nodes_comments_blank_lines(tmp_path):
    sentences = read_tagged(write(tmp_path, SAMPLE))
    assert sentences == [
        TaggedSentence(("Do", "n't", "go", "!"), ("AUX", "PART", "VERB", "PUNCT"), 2),
        TaggedSentence(("Dogs", "bark"), ("NOUN", "VERB"), 13),
    ]


def test_xpos_column(tmp_path):
    sentences = read_tagged(write(tmp_path, SAMPLE), column="xpos")
    assert [s.tags for s in sentences] == [("VBP", "RB", "VB", "."), ("NNS", "VBP")]
    assert COLUMNS == ("upos", "xpos")


def test_windows_line_endings_bom_and_no_final_newline(tmp_path):
    expected = read_tagged(write(tmp_path, SAMPLE))
    assert read_tagged(write(tmp_path, SAMPLE, "crlf.conllu", newline="\r\n")) == expected
    assert read_tagged(write(tmp_path, "\ufeff" + SAMPLE.rstrip("\n"), "bare.conllu")) == expected


def test_comments_only_block_is_not_a_sentence(tmp_path):
    text = "# newdoc id = a\n# meta = b\n\n" + row(1, "Hi", "INTJ") + "\n"
    assert read_tagged(write(tmp_path, text)) == [TaggedSentence(("Hi",), ("INTJ",), 4)]


@pytest.mark.parametrize(
    ("lines", "line", "message"),
    [
        ([row(1, "a", "DET"), "2\tb\t_\tNOUN"], 2, "10 tab-separated columns, got 4"),
        ([row(1, "a", "DET"), "2 b _ NOUN _ _ _ _ _ _"], 2, "10 tab-separated columns, got 1"),
        (["# c", row(1, "a", "DET"), row(2, "b", "_")], 3, "has no UPOS"),
        ([row(1, "", "DET")], 1, "empty FORM"),
        ([row(1, "a", "DET"), row("x", "b", "NOUN")], 2, "bad ID 'x'"),
        ([row(1, "a", "DET"), row("3-2", "b", "NOUN")], 2, "bad ID '3-2'"),
        ([row(1, "a", "DET"), row("_", "b", "NOUN")], 2, "bad ID '_'"),
        ([row(1, "a", "DET"), row(3, "b", "NOUN")], 2, "out of order: expected 2"),
        ([row("1-2", "ab"), "", row(1, "a", "DET")], 1, "no words"),
    ],
)
def test_errors_name_file_and_line(tmp_path, lines, line, message):
    path = write(tmp_path, "# sent_id = 0\n\n" + "\n".join(lines) + "\n")
    with pytest.raises(TreebankError, match=where(path, line + 2) + ".*" + re.escape(message)) as caught:
        read_tagged(path)
    assert (caught.value.path, caught.value.line) == (str(path), line + 2)


def test_missing_xpos_is_an_error_only_for_xpos(tmp_path):
    path = write(tmp_path, row(1, "a", "DET") + "\n")
    assert read_tagged(path)[0].tags == ("DET",)
    with pytest.raises(TreebankError, match=where(path, 1) + ".*has no XPOS"):
        read_tagged(path, column="xpos")


@pytest.mark.parametrize("text", ["", "\n\n  \r\n", "# only a comment\n"])
def test_empty_file(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(TreebankError, match=where(path, 1) + " no sentences"):
        read_tagged(path)
    if text.startswith("#"):  # plain text to read_tokenized: "#" is a word there
        assert read_tokenized(path) == [["#", "only", "a", "comment"]]
        return
    with pytest.raises(TreebankError, match=where(path, 1) + " no sentences"):
        read_tokenized(path)


def test_missing_file_not_utf8_and_bad_column(tmp_path):
    missing = tmp_path / "nope.conllu"
    with pytest.raises(TreebankError, match=re.escape(f"{missing}: file does not exist")):
        read_tagged(missing)
    with pytest.raises(TreebankError, match=re.escape(f"{missing}: file does not exist")):
        read_tokenized(missing)
    latin = tmp_path / "latin.conllu"
    latin.write_bytes((row(1, "a", "DET") + "\n" + row(2, "caf\xe9", "NOUN") + "\n").encode("latin-1"))
    with pytest.raises(TreebankError, match=where(latin, 2) + " not UTF-8"):
        read_tagged(latin)
    with pytest.raises(ValueError, match=r"column must be one of \('upos', 'xpos'\), got 'lemma'"):
        read_tagged(missing, column="lemma")
    with pytest.raises(ValueError, match="column must be one of"):
        write_tagged(tmp_path / "out.conllu", [["a"]], [["DET"]], column="feats")


@pytest.mark.parametrize("column", COLUMNS)
def test_write_read_round_trip(tmp_path, column):
    sentences = [["The", "dog", "barks", "."], ["Hi", "don't"]]
    tags = [["DET", "NOUN", "VERB", "PUNCT"], ["INTJ", "AUX"]]
    path = tmp_path / "sub" / "tagged.conllu"
    write_tagged(path, sentences, tags, column=column)
    assert [(list(s.words), list(s.tags), s.line) for s in read_tagged(path, column)] == [
        (sentences[0], tags[0], 1),
        (sentences[1], tags[1], 7),
    ]
    parsed = conllu.parse(path.read_text(encoding="utf-8"))
    assert [t["form"] for t in parsed[0]] == sentences[0]
    assert [t[column] for t in parsed[1]] == tags[1]
    assert parsed[0].metadata["text"] == "The dog barks ."
    assert path.read_text(encoding="utf-8").endswith("\t_\n\n")
    assert [p.name for p in path.parent.iterdir()] == ["tagged.conllu"]  # no temporary file left behind
    assert read_tokenized(path) == sentences


def test_write_tagged_rejects_mismatches(tmp_path):
    path = tmp_path / "out.conllu"
    with pytest.raises(ValueError, match="2 sentences but 1 tag lists"):
        write_tagged(path, [["a"], ["b"]], [["X"]])
    with pytest.raises(ValueError, match="sentence 1 has 2 words but 1 tags"):
        write_tagged(path, [["a", "b"]], [["X"]])
    with pytest.raises(ValueError, match="sentence 1 has no words"):
        write_tagged(path, [[]], [[]])
    with pytest.raises(ValueError, match="bad tag '_'"):
        write_tagged(path, [["a"]], [["_"]])
    with pytest.raises(ValueError, match="holds a tab/newline"):
        write_tagged(path, [["a\tb"]], [["X"]])
    assert not path.exists()


def test_read_tokenized_text_and_conllu(tmp_path):
    text = write(tmp_path, "\n  The dog  ate the apple .\n\n# not a comment here\r\nHi\n", "plain.txt")
    assert read_tokenized(text) == [
        ["The", "dog", "ate", "the", "apple", "."],
        ["#", "not", "a", "comment", "here"],
        ["Hi"],
    ]
    assert read_tokenized(write(tmp_path, SAMPLE)) == [["Do", "n't", "go", "!"], ["Dogs", "bark"]]
    untagged = write(tmp_path, "# text = a b\n" + row(1, "a") + "\n" + row(2, "b") + "\n", "untagged.conllu")
    assert read_tokenized(untagged) == [["a", "b"]]
    broken = write(tmp_path, row(1, "a") + "\n" + "2\tb\n", "broken.conllu")
    with pytest.raises(TreebankError, match=where(broken, 2) + ".*10 tab-separated columns"):
        read_tokenized(broken)


def test_most_frequent_tag_baseline_by_hand():
    train = [
        TaggedSentence(("the", "run", "ends"), ("DET", "NOUN", "VERB"), 1),
        TaggedSentence(("we", "run"), ("PRON", "VERB"), 5),
        (("run", "the", "race"), ("VERB", "DET", "NOUN")),
        (("fast",), ("ADV",)),
        (("fast",), ("ADJ",)),
    ]
    word_tags, fallback = most_frequent_tags(train)
    # run: VERB 2, NOUN 1; fast: ADV and ADJ tie, ADV seen first; overall: DET 2, NOUN 2, VERB 3.
    assert word_tags == {"the": "DET", "run": "VERB", "ends": "VERB", "we": "PRON", "race": "NOUN", "fast": "ADV"}
    assert fallback == "VERB"
    test = [(("the", "run", "fast", "dog"), ("DET", "NOUN", "ADJ", "NOUN")), (("we", "sing"), ("PRON", "VERB"))]
    assert predict_most_frequent(["the", "dog"], word_tags, fallback) == ["DET", "VERB"]
    # the DET ok, run VERB x, fast ADV x, dog VERB x, we PRON ok, sing VERB ok: 3 of 6.
    assert baseline_accuracy(test, word_tags, fallback) == pytest.approx(0.5)
    # Overall tie DET 1, NOUN 1: the first seen wins.
    assert most_frequent_tags([(("a", "b"), ("DET", "NOUN"))])[1] == "DET"
    with pytest.raises(ValueError, match="no tagged words"):
        most_frequent_tags([])
    with pytest.raises(ValueError, match="2 words but 1 tags"):
        baseline_accuracy([(("a", "b"), ("X",))], word_tags, fallback)


def test_real_gum_dev_counts():
    if not GUM_DEV.exists():
        print(f"skipped: {GUM_DEV} is not here (development data outside the project)")
        pytest.skip(f"{GUM_DEV} is not here")
    start = time.perf_counter()
    sentences = read_tagged(GUM_DEV)
    seconds = time.perf_counter() - start
    words = sum(len(s.words) for s in sentences)
    # The README's "tokens" are syntactic words (integer ids): 28,119. Surface tokens count each
    # multiword token once instead of its words, which gives fewer.
    lines = [line.split("\t") for line in GUM_DEV.read_text(encoding="utf-8").split("\n") if line[:1].isdigit()]
    ranges = [tuple(map(int, f[0].split("-"))) for f in lines if "-" in f[0]]
    surface = words - sum(end - start + 1 for start, end in ranges) + len(ranges)
    print(f"GUM dev: {len(sentences)} sentences, {words} words, {surface} surface tokens, read in {seconds:.2f} s")
    assert len(sentences) == 1575
    assert words == 28119
    assert surface < words
    assert len({tag for s in sentences for tag in s.tags}) == 17


def test_missing_conllu_package_says_what_to_install(tmp_path, monkeypatch):
    from lstmkit.data import MissingDatasetPackage

    monkeypatch.setitem(sys.modules, "conllu.parser", None)
    with pytest.raises(MissingDatasetPackage, match=re.escape("pip install 'lstmkit[data]'")):
        read_tagged(write(tmp_path, SAMPLE))

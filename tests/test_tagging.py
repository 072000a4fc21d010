"""``lstmkit train tag`` and ``lstmkit tag``: the word-and-character BiLSTM tagger's gradients
(finite differences), its batches, a run that learns tags from spelling on a CoNLL-U fixture
written here, evaluate / resume / tag on its checkpoint, and the errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

import lstmkit
from lstmkit import io
from lstmkit.cli import main
from lstmkit.data.treebank_files import TaggedSentence, read_tagged
from lstmkit.nn.tagger import PADDING, UNKNOWN, Tagger, TaggerBatch
from lstmkit.tasks.tagging import TaggingData, TagTask, length_batches
from lstmkit.train import CHECKPOINT, Trainer

SUFFIXES = {"ing": "VERB", "ly": "ADV", "ness": "NOUN", "ful": "ADJ"}


def random_batch(rng, words=12, chars=9):
    lengths = np.array([4, 2, 3])
    mask = np.arange(4)[:, None] < lengths[None, :]
    spelling_lengths = np.array([3, 1, 2, 4, 2])
    spellings = np.where(np.arange(4)[:, None] < spelling_lengths, rng.integers(2, chars, (4, 5)), PADDING)
    return TaggerBatch(
        np.where(mask, rng.integers(1, words, (4, 3)), PADDING), lengths, spellings, spelling_lengths,
        np.where(mask, rng.integers(0, 5, (4, 3)), 0),
    )  # fmt: skip


def test_tagger_gradients_equal_finite_differences():
    rng = np.random.default_rng(0)
    model = Tagger(12, 9, 5, 4, 3, 3, 4, num_layers=2, dropout=0.0, dtype=np.float64, seed=0)
    batch = random_batch(rng)
    targets = rng.integers(0, 5, int(batch.lengths.sum()))
    loss = lstmkit.CrossEntropyLoss()

    def value():
        with lstmkit.no_grad():
            return float(loss(model(batch), targets))

    model.zero_grad()
    loss(model(batch), targets)
    model.backward(loss.backward())
    for name, parameter in model.named_parameters():
        for index in list(np.ndindex(*parameter.shape))[:: max(1, parameter.data.size // 12)]:
            kept = parameter.data[index]
            parameter.data[index] = kept + 1e-6
            above = value()
            parameter.data[index] = kept - 1e-6
            below = value()
            parameter.data[index] = kept
            assert abs((above - below) / 2e-6 - parameter.grad[index]) < 1e-7, (name, index)


def test_logits_follow_the_sentences_word_by_word():
    """The logits of a batch equal those of each sentence alone (padding and batching change nothing)."""
    rng = np.random.default_rng(1)
    model = Tagger(12, 9, 5, 4, 3, 3, 4, dtype=np.float64, seed=0).eval()
    data = TaggingData(
        {"train": [TaggedSentence(("a", "bb", "a"), ("X", "Y", "X"), 1), TaggedSentence(("ccc",), ("Z",), 5)]}
    )
    sentences = [["a", "bb", "a", "ccc"], ["bb"], ["ddd", "a"]]
    together = model(data.batch(sentences))
    alone = np.concatenate([model(data.batch([sentence])) for sentence in sentences])
    np.testing.assert_allclose(together, alone, rtol=0, atol=1e-12)
    assert rng is not None


def test_batches_encode_words_characters_and_rare_words():
    train = [TaggedSentence(("The", "dog", "the", "cat"), ("DET", "NOUN", "DET", "NOUN"), 1)] * 1 + [
        TaggedSentence(("rare",), ("ADJ",), 7)
    ]
    data = TaggingData({"train": train})
    assert data.vocabulary["words"][:2] == ["<pad>", "<unk>"] and "the" in data.vocabulary["words"]
    batch = data.batch([["The", "zebra"], ["rare"]])
    words = data.vocabulary["words"]
    assert [words[i] for i in batch.words[:, 0]] == ["the", "<unk>"]  # lowercased; unseen: unknown
    assert batch.words[1, 1] == PADDING and list(batch.lengths) == [2, 1]
    chars = data.vocabulary["chars"]
    spelled = ["".join(chars[c] for c in batch.spellings[:n, u]) for u, n in enumerate(batch.spelling_lengths)]
    assert spelled == ["The", "<unk>" * 0 + "".join(chars[c] for c in batch.spellings[:5, 1]), "rare"]
    assert batch.spellings[0, 1] == UNKNOWN  # 'z' was never seen in training
    rng = np.random.default_rng(0)
    replaced = np.mean([data.batch([["rare"]], rng, 0.5).words[0, 0] == UNKNOWN for _ in range(400)])
    assert abs(replaced - 0.5) < 3 * np.sqrt(0.25 / 400)  # singletons become unknown at the rate
    assert data.batch([["the"]], rng, 1.0).words[0, 0] != UNKNOWN  # 'the' is seen twice: never replaced
    assert list(data.targets([TaggedSentence(("x",), ("INTJ",), 1)])) == [-1]  # a tag training never saw


def test_length_batches_group_similar_lengths():
    sentences = [TaggedSentence(("w",) * n, ("T",) * n, 1) for n in [5, 1, 3, 1, 5, 3]]
    batches = length_batches(sentences, 2, np.random.default_rng(0))
    assert sorted(len({len(sentences[i].words) for i in batch}) for batch in batches) == [1, 1, 1]
    assert sorted(i for batch in batches for i in batch) == list(range(6))


def write_treebank(path, rng, sentences, stems, extra_tag=False):
    """A CoNLL-U file whose tags follow the words' suffixes (with a multiword token and a comment)."""
    lines = []
    for index in range(sentences):
        lines.append(f"# sent_id = {index}")
        words = []
        for _ in range(int(rng.integers(2, 7))):
            suffix = list(SUFFIXES)[int(rng.integers(len(SUFFIXES)))]
            words.append((stems[int(rng.integers(len(stems)))] + suffix, SUFFIXES[suffix]))
        if extra_tag and index == 0:
            words.append(("wow", "INTJ"))
        lines.append(f"1-2\t{words[0][0]}{words[1][0]}\t_\t_\t_\t_\t_\t_\t_\t_")
        for number, (form, tag) in enumerate(words, 1):
            lines.append(f"{number}\t{form}\t_\t{tag}\t_\t_\t_\t_\t_\t_")
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def treebank(tmp_path_factory):
    folder = tmp_path_factory.mktemp("treebank")
    rng = np.random.default_rng(0)
    letters = list("bcdfghklmnprstvz")
    stems = ["".join(rng.choice(letters, 3)) for _ in range(60)]
    write_treebank(folder / "train.conllu", rng, 240, stems[:40])
    write_treebank(folder / "dev.conllu", rng, 40, stems[40:50])  # words never seen in training
    write_treebank(folder / "test.conllu", rng, 40, stems[50:], extra_tag=True)
    return folder


def tag_command(treebank, out, *more):
    files = [f"--{part}" if i % 2 == 0 else str(treebank / name) for part, name in
             (("train", "train.conllu"), ("valid", "dev.conllu"), ("test", "test.conllu")) for i in (0, 1)]  # fmt: skip
    return ["train", "tag", *files, "--hidden-size", "16", "--no-progress", "--out", str(out), *more]


def test_a_run_learns_tags_from_spelling_and_its_checkpoint_tags(treebank, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(tag_command(treebank, out, "--epochs", "6")) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test"]["unseen_word_accuracy"] > 0.9  # every test word is new: only the characters tell
    assert "most-frequent-tag baseline" in printed and "tags not seen in training: INTJ" in printed
    report = json.loads((out / "result.json").read_text())["runs"][0]["report"]["test"]
    assert report["tags_not_in_training"] == ["INTJ"] and report["baseline_accuracy"] < 0.5
    assert main(["evaluate", str(out / "best.npz")]) == 0
    evaluated = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert evaluated["test"]["accuracy"] == pytest.approx(summary["test"]["accuracy"])
    assert main(["tag", str(out / "best.npz"), "--text", "zumbing qixly"]) == 0
    assert capsys.readouterr().out.strip() == "zumbing/VERB qixly/ADV"
    plain = tmp_path / "plain.txt"
    plain.write_text("kepness zapful\nvorly\n", encoding="utf-8")
    assert main(["tag", str(out / "best.npz"), "--file", str(plain), "--out", str(tmp_path / "tagged.conllu")]) == 0
    tagged = read_tagged(tmp_path / "tagged.conllu")
    assert [s.tags for s in tagged] == [("NOUN", "ADJ"), ("ADV",)]


def test_resume_ends_with_the_weights_of_an_uninterrupted_run(treebank, tmp_path):
    files = {"train": "train", "valid": "dev", "test": "test"}
    config = TagTask.make_config(**{part: str(treebank / f"{name}.conllu") for part, name in files.items()})
    config.update(hidden_size=8, epochs=2)

    def trainer(out):
        return Trainer(TagTask(config), out, progress=False, log=lambda _: None)

    trainer(tmp_path / "straight").fit()
    assert trainer(tmp_path / "resumed").fit(stop_after=1) == {"stopped_after_epoch": 1}
    trainer(tmp_path / "resumed").fit(resume=True)  # a new process, in effect
    expected, _ = io.load_checkpoint(tmp_path / "straight" / CHECKPOINT)
    actual, meta = io.load_checkpoint(tmp_path / "resumed" / CHECKPOINT)
    assert meta["epoch"] == 2 and sorted(actual) == sorted(expected)
    for name in expected:
        np.testing.assert_array_equal(actual[name], expected[name], err_msg=name)


def test_tag_errors_are_one_clear_line(treebank, tmp_path, capsys):
    assert main(["train", "tag", "--out", str(tmp_path / "a")]) == 2
    assert "--train FILE" in capsys.readouterr().err
    assert main(["train", "digits", "--train", "x.conllu", "--out", str(tmp_path / "b")]) == 2
    assert "apply to the tag task only" in capsys.readouterr().err
    broken = tmp_path / "broken.conllu"
    broken.write_text("1\tword\t_\tNOUN\n", encoding="utf-8")
    command = tag_command(treebank, tmp_path / "c")
    command[command.index("--train") + 1] = str(broken)
    assert main(command) == 2
    assert f"{broken}:1:" in capsys.readouterr().err
    checkpoint = tmp_path / "digits"
    assert (
        main(["train", "digits", "--epochs", "1", "--max-batches", "1", "--no-progress", "--out", str(checkpoint)]) == 0
    )
    capsys.readouterr()
    assert main(["tag", str(checkpoint / "best.npz"), "--text", "a b"]) == 2
    assert "lstmkit tag needs one of lstmkit train tag" in capsys.readouterr().err

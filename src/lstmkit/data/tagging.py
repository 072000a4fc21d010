"""The most-frequent-tag baseline of a tagger (pure Python).

=====================  ==============================================================
function               what
=====================  ==============================================================
most_frequent_tags     ``(word_tags, fallback)``: each training word's most frequent
                       tag, and the most frequent tag overall for unseen words
predict_most_frequent  the baseline's tags for one sentence
baseline_accuracy      the fraction of words the baseline tags right
=====================  ==============================================================

Sentences are anything with ``.words`` and ``.tags`` (a :class:`~lstmkit.data.treebank_files.TaggedSentence`)
or ``(words, tags)`` pairs. Ties are broken by the tag seen first in the training sentences, so the
result depends only on the data and its order (no alphabetical or hash order).
"""

from __future__ import annotations

from collections import Counter


def _pairs(sentences):
    for sentence in sentences:
        words, tags = (sentence.words, sentence.tags) if hasattr(sentence, "words") else sentence
        if len(words) != len(tags):
            raise ValueError(f"tagging: a sentence has {len(words)} words but {len(tags)} tags")
        yield words, tags


def _first_most_common(counter: Counter) -> str:
    # max() returns the first maximal item, and a Counter iterates in first-seen order.
    return max(counter.items(), key=lambda item: item[1])[0]


def most_frequent_tags(sentences) -> tuple[dict[str, str], str]:
    """``(word_tags, fallback)``: word -> its most frequent tag, and the most frequent tag overall.

    Ties go to the tag seen first (for that word, or overall). Words are compared exactly (case kept).
    """
    per_word: dict[str, Counter] = {}
    overall: Counter = Counter()
    for words, tags in _pairs(sentences):
        for word, tag in zip(words, tags):
            per_word.setdefault(word, Counter())[tag] += 1
            overall[tag] += 1
    if not overall:
        raise ValueError("most_frequent_tags: no tagged words in the sentences")
    return {word: _first_most_common(counts) for word, counts in per_word.items()}, _first_most_common(overall)


def predict_most_frequent(words, word_tags: dict[str, str], fallback: str) -> list[str]:
    """The baseline's tag for each word: its most frequent training tag, else ``fallback``."""
    return [word_tags.get(word, fallback) for word in words]


def baseline_accuracy(sentences, word_tags: dict[str, str], fallback: str) -> float:
    """Fraction of words in ``sentences`` whose gold tag the most-frequent-tag baseline predicts."""
    correct = total = 0
    for words, tags in _pairs(sentences):
        predicted = predict_most_frequent(words, word_tags, fallback)
        correct += sum(p == t for p, t in zip(predicted, tags))
        total += len(tags)
    if total == 0:
        raise ValueError("baseline_accuracy: no tagged words in the sentences")
    return correct / total

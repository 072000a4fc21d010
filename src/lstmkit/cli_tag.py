"""``lstmkit tag CHECKPOINT --text "..." | --file FILE --out OUT``: tag new sentences with a trained tagger.

``--text`` is one sentence, its words separated by spaces; each word is printed with its tag
(``The/DET dog/NOUN``). ``--file`` is a tokenized file (one sentence per line, words separated
by whitespace, or a CoNLL-U file whose words are read), tagged into a CoNLL-U file ``--out``,
written atomically; an existing ``--out`` is replaced only with ``--force``, never the input.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .cli_options import HelpFormatter


def add_tag_parser(commands) -> None:
    """The ``tag`` subcommand."""
    tag = commands.add_parser(
        "tag",
        help="tag words with a checkpoint of lstmkit train tag",
        formatter_class=HelpFormatter,
        allow_abbrev=False,
    )
    tag.add_argument("checkpoint", type=Path, help="a checkpoint written by lstmkit train tag, e.g. runs/tag/best.npz")
    given = tag.add_mutually_exclusive_group(required=True)
    given.add_argument("--text", default=None, help="one sentence, words separated by spaces (default: none)")
    given.add_argument("--file", type=Path, default=None, help="a tokenized or CoNLL-U file to tag (default: none)")
    tag.add_argument("--out", type=Path, default=None, help="the CoNLL-U file --file's tags go to (default: none)")
    tag.add_argument("--force", action="store_true", help="replace --out if it exists")


def load_tagger(checkpoint: Path):
    """``(model, data, config)`` of a tag checkpoint, without its training files."""
    from . import io
    from .cli_train import checkpoint_and_task
    from .tasks.tagging import TaggingData, tagger_of

    arrays, meta, _ = checkpoint_and_task(checkpoint)  # a folder or a bad file: the CLI's one-line error
    config = meta["config"]
    if config.get("task") != "tag":
        raise ValueError(
            f"{checkpoint} is a {config.get('task')} checkpoint; lstmkit tag needs one of lstmkit train tag"
        )
    model = tagger_of(config, meta["vocabulary"])
    model.load_state_dict(io.prefixed(arrays, "model"))
    return model.eval(), TaggingData({}, meta["vocabulary"]), config


def run_tag(args: argparse.Namespace) -> list[list[str]]:
    from .data.treebank_files import read_tokenized, write_tagged
    from .tasks.tagging import predict_tags

    if args.text is not None and not args.text.split():
        raise ValueError("--text is empty; give a sentence, words separated by spaces")
    if args.file is not None:
        if args.out is None:
            raise ValueError("--file needs --out FILE, the CoNLL-U file to write the tags to")
        if args.out.resolve() == args.file.resolve():
            raise ValueError(f"--out {args.out} is the input file; choose another file")
        if args.out.exists() and not args.force:
            raise ValueError(f"{args.out} exists; give --force to replace it, or another file name")
    elif args.out is not None:
        raise ValueError("--out applies to --file; --text prints its tags")
    model, data, config = load_tagger(args.checkpoint)
    sentences = [args.text.split()] if args.text is not None else read_tokenized(args.file)
    started = time.perf_counter()
    predictions = predict_tags(model, data, sentences)
    seconds = time.perf_counter() - started
    tags = [[data.vocabulary["tags"][index] for index in row] for row in predictions]
    if args.text is not None:
        print(" ".join(f"{word}/{tag}" for word, tag in zip(sentences[0], tags[0])))
    else:
        write_tagged(args.out, sentences, tags, config["column"])
        speed = {
            "sentences": len(sentences),
            "seconds": round(seconds, 3),
            "sentences_per_second": round(len(sentences) / seconds),
        }
        print(json.dumps({"file": str(args.file), "out": str(args.out), **speed}), file=sys.stdout)
    return tags

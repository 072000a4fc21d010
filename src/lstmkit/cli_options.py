"""Option checks and help formatting shared by the ``lstmkit`` subcommands.

Every numeric option is checked when it is parsed, so a bad value stops the command at once with
argparse's usual message, e.g. ``argument --batch-size: must be an integer >= 1, got 0``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def integer_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type=``: an integer ``>= minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def _finite_float(text: str, expected: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number {expected}, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number {expected}, got {text}")
    return value


def positive_float(text: str) -> float:
    """An argparse ``type=``: a finite number > 0."""
    value = _finite_float(text, "> 0")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """An argparse ``type=``: a finite number >= 0 (0 switches the option off)."""
    value = _finite_float(text, ">= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def probability_below_one(text: str) -> float:
    """An argparse ``type=``: a number in [0, 1) (a dropout probability)."""
    value = _finite_float(text, "in [0, 1)")
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text}")
    return value


POSITIVE_INT = integer_at_least(1)
NON_NEGATIVE_INT = integer_at_least(0)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows every option's default: ``(default: X)``, ``(default: off)`` for flags.

    An option whose default is None writes its default into its own help text (the train
    options, whose defaults are each task's recipe).
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default is argparse.SUPPRESS or action.default is None:
            return text
        if action.nargs == 0 and action.const is True:  # a store_true flag
            return f"{text} (default: off)"
        if not action.option_strings:  # a positional argument: required, no default
            return text
        return f"{text} (default: %(default)s)"

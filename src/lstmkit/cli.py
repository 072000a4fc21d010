"""The ``lstmkit`` command: ``explain``, ``train``, ``evaluate``, ``generate``."""

from __future__ import annotations

import argparse
import sys

from .cli_train import add_train_parser, dispatch
from .explain import MODES, explain_layer


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lstmkit", description="LSTMs in NumPy, exactly like PyTorch's.")
    commands = parser.add_subparsers(dest="command", required=True)
    explain = commands.add_parser("explain", help="print every tensor's shape and parameter count of an LSTM, GRU or RNN")
    explain.add_argument("--mode", choices=MODES, default="LSTM", help="the layer: LSTM (default), GRU, RNN_TANH or RNN_RELU")
    explain.add_argument("--input-size", type=_positive, required=True, help="H_in: features per step")
    explain.add_argument("--hidden-size", type=_positive, required=True, help="H: units of h and c")
    explain.add_argument("--num-layers", type=_positive, default=1)
    explain.add_argument("--seq-len", type=_positive, default=1, help="L: time steps")
    explain.add_argument("--batch", type=_positive, default=1, help="N: sequences per batch")
    explain.add_argument("--unbatched", action="store_true", help="explain an unbatched (L, H_in) input")
    explain.add_argument("--bidirectional", action="store_true")
    explain.add_argument("--proj-size", type=_non_negative, default=0)
    explain.add_argument("--batch-first", action="store_true")
    explain.add_argument("--no-bias", action="store_true")
    explain.add_argument("--style", choices=("torch", "keras"), default="torch",
                         help="torch (default): PyTorch's tensors beside Keras'; keras: the Keras layers, summary() and weights")
    add_train_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "explain":
        try:
            if args.style == "keras":
                from .keras.explain import explain_keras

                text = explain_keras(args.input_size, args.hidden_size, args.num_layers, args.seq_len, args.batch,
                                     mode=args.mode, bias=not args.no_bias, bidirectional=args.bidirectional,
                                     proj_size=args.proj_size)
            else:
                text = explain_layer(
                    args.input_size, args.hidden_size, args.num_layers, args.seq_len,
                    None if args.unbatched else args.batch, mode=args.mode, bias=not args.no_bias,
                    batch_first=args.batch_first, bidirectional=args.bidirectional, proj_size=args.proj_size,
                )
        except (ValueError, TypeError) as error:
            print(f"lstmkit explain: {error}", file=sys.stderr)
            return 2
        print(text)
        return 0
    return dispatch(args)


if __name__ == "__main__":
    sys.exit(main())

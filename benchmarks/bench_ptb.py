"""Training throughput on Penn Treebank: Zaremba et al.'s small model in lstmkit and in torch, same work.

Both frameworks train the same network (embedding 200, 2x200 LSTM, softmax over 10,000 words)
from the same initial weights on the same batches (20 x 35 tokens, state carried between
batches, loss summed over steps, gradient clipped to norm 5, SGD lr 1), float32, on this
machine's cores. The script checks that the first batch's loss agrees, then times --batches
training batches of each (default: one whole epoch), the two taking turns every 50 batches, and
prints seconds per epoch and the ratio.

    python benchmarks/bench_ptb.py --json benchmarks/ptb-cpu-2core.json
"""

from __future__ import annotations

import argparse
import json
import time

import lstmkit  # noqa: F401  before NumPy loads OpenBLAS (lstmkit._openblas)

# isort: split
import numpy as np
import torch

from lstmkit.data.text import lm_batches, load_ptb
from lstmkit.io import atomic_write
from lstmkit.nn.language_model import LanguageModel
from lstmkit.nn.losses import CrossEntropyLoss
from lstmkit.optim import SGD, clip_grad_norm_

EMBEDDING, HIDDEN, LAYERS, BATCH, BPTT, LR, CLIP = 200, 200, 2, 20, 35, 1.0, 5.0


class TorchLanguageModel(torch.nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.embedding = torch.nn.Embedding(vocab_size, EMBEDDING)
        self.lstm = torch.nn.LSTM(EMBEDDING, HIDDEN, LAYERS)
        self.decoder = torch.nn.Linear(HIDDEN, vocab_size)

    def forward(self, tokens, state=None):
        output, state = self.lstm(self.embedding(tokens), state)
        return self.decoder(output), state


def lstmkit_trainer(model):
    loss_function, optimizer = CrossEntropyLoss(), SGD(list(model.parameters()), lr=LR)
    parameters, state = list(model.parameters()), [None]

    def train(inputs, targets):
        model.zero_grad()
        logits, state[0] = model(inputs, state[0])
        loss = loss_function(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        model.backward(loss_function.backward(float(targets.shape[0])).reshape(logits.shape))
        clip_grad_norm_(parameters, CLIP)
        optimizer.step()
        return float(loss)

    return train


def torch_trainer(model):
    optimizer, state = torch.optim.SGD(model.parameters(), lr=LR), [None]

    def train(inputs, targets):
        model.zero_grad()
        logits, new_state = model(torch.from_numpy(inputs), state[0])
        state[0] = tuple(part.detach() for part in new_state)  # truncated BPTT
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), torch.from_numpy(targets).reshape(-1)
        )
        (loss * targets.shape[0]).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()
        return float(loss.detach())

    return train


def timed_alternating(trainers: dict, batches, chunk: int = 50) -> dict:
    """Seconds each trainer spends on all of ``batches``, the frameworks taking turns every
    ``chunk`` batches, so drifts of the machine hit both alike."""
    seconds = dict.fromkeys(trainers, 0.0)
    for start in range(0, len(batches), chunk):
        for name, train in trainers.items():
            began = time.perf_counter()
            for inputs, targets in batches[start : start + chunk]:
                train(inputs, targets)
            seconds[name] += time.perf_counter() - began
    return seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=None, help="batches to time (default: one epoch)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    corpus = load_ptb()
    vocab_size = len(corpus.vocabulary)
    epoch = [
        (inputs.astype(np.int64), targets.astype(np.int64))
        for inputs, targets in lm_batches(corpus.parts["train"], BATCH, BPTT)
    ]
    batches = epoch[: args.batches] if args.batches else epoch
    ours = LanguageModel(vocab_size, EMBEDDING, HIDDEN, LAYERS, 0.0, 0.1, seed=0)
    theirs = TorchLanguageModel(vocab_size)
    theirs.load_state_dict({name: torch.from_numpy(value.copy()) for name, value in ours.state_dict().items()})
    train_ours, train_theirs = lstmkit_trainer(ours), torch_trainer(theirs)
    first = [train(*batches[0]) for train in (train_ours, train_theirs)]  # also the warm-up
    if abs(first[0] - first[1]) > 1e-4 * abs(first[1]):
        raise AssertionError(f"first-batch losses differ: lstmkit {first[0]}, torch {first[1]}")
    seconds = timed_alternating({"lstmkit": train_ours, "torch": train_theirs}, batches[1:])
    per_epoch = {name: value / (len(batches) - 1) * len(epoch) for name, value in seconds.items()}
    print(
        f"PTB small, {len(batches) - 1} batches of {BATCH}x{BPTT} timed; first-batch loss lstmkit {first[0]:.5f}, "
        f"torch {first[1]:.5f}"
    )
    for name, value in per_epoch.items():
        print(
            f"{name:>8}: {value:7.1f} s per epoch of {len(epoch)} batches "
            f"({1e3 * seconds[name] / (len(batches) - 1):.1f} ms a batch)"
        )
    print(f"ratio lstmkit/torch: {per_epoch['lstmkit'] / per_epoch['torch']:.2f}")
    if args.json:
        result = {
            "batches_timed": len(batches) - 1,
            "batches_per_epoch": len(epoch),
            "seconds_per_epoch": per_epoch,
            "first_batch_loss": first,
        }
        atomic_write(args.json, lambda handle: handle.write(json.dumps(result, indent=2)), mode="w")


if __name__ == "__main__":
    main()

"""A training loop written with lstmkit.distributed, run by tests/test_distributed.py, alone or under
``mpiexec -n K``: float64, a fixed global batch stream; rank 0 writes the weights and the losses to OUT."""

import sys

import lstmkit  # noqa: F401  before NumPy

# isort: split
import numpy as np

from lstmkit import LSTM, Adam, CrossEntropyLoss, LastStep, Linear, Sequential, clip_grad_norm_, distributed

out = sys.argv[1]
comm = distributed.init()
rng = np.random.default_rng(0)
x = rng.standard_normal((240, 6, 5))
y = (x[:, :, 0].sum(axis=1) > 0).astype(np.int64) + (x[:, -1, 1] > 0)
model = Sequential(
    LSTM(5, 12, num_layers=2, batch_first=True, dtype=np.float64, seed=1), LastStep(),
    Linear(12, 3, dtype=np.float64, seed=2),
)  # fmt: skip
loss_fn, optimizer = CrossEntropyLoss(), Adam(model.parameters(), lr=1e-2)
losses = []
for step in range(12):
    batch = np.random.default_rng([0, step]).choice(len(y), size=30, replace=False)  # the same on every rank
    rows = batch[distributed.shard(len(batch), comm)]  # this rank's contiguous share
    model.zero_grad()
    loss = loss_fn(model(x[rows]), y[rows])
    model.backward(loss_fn.backward())
    total, count = comm.allreduce_gradients(model.parameters(), float(loss) * len(rows), len(rows))
    clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    losses.append(total / count)
if comm.is_root:
    np.savez(out, losses=np.array(losses), **{name: value for name, value in model.state_dict().items()})

"""Data-parallel training over MPI, in the spirit of Horovod: a few calls around a training loop.

Started with ``mpiexec -n K``, K processes (ranks) each hold the whole model. Every rank builds
the same global batch (same seed, same order), keeps its contiguous share of it
(:func:`shard`), computes its gradients, and one Allreduce per step sums everyone's gradients,
each weighted by its share of the batch (:meth:`Communicator.allreduce_gradients`): every rank
then holds the gradient of the whole global batch and applies the same update. The weights stay
identical on every rank and equal those of one process with the same global batch, up to the
order of the sums. Rank 0 alone writes files and prints.

Without ``mpiexec`` nothing changes: :func:`init` returns a one-process communicator and MPI
(mpi4py) is never imported.

    >>> from lstmkit import distributed                      # doctest: +SKIP
    >>> comm = distributed.init()                           # rank, size; one process without mpiexec
    >>> rows = distributed.shard(len(batch), comm)          # this rank's slice of the global batch
    >>> loss = loss_fn(model(x[rows]), y[rows]); model.backward(loss_fn.backward())
    >>> total, count = comm.allreduce_gradients(model.parameters(), float(loss) * n_local, n_local)
    >>> optimizer.step()                                    # the same step on every rank
    >>> if comm.is_root: save(...)

    ===============================  =================================================
    call                             what it does
    ===============================  =================================================
    init()                           the communicator: MPI's COMM_WORLD under mpiexec
    shard(count, comm)               this rank's contiguous slice of ``count`` rows
    comm.allreduce_gradients(...)    one Allreduce of every gradient and the loss
    comm.allgather_rows(array)       every rank's rows, concatenated in rank order
    comm.allreduce_sum(array)        an elementwise sum over ranks, in place
    comm.is_root                     rank 0: the one that writes and prints
    comm.split(color), active(group)  rank groups (e.g. one seed each), made current
    ===============================  =================================================
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable

import numpy as np

RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")  # set by MPICH's, Open MPI's, PMIx launchers


def launched_by_mpiexec() -> bool:
    """Whether this process was started by an MPI launcher (``mpiexec``/``mpirun``/``srun``)."""
    return any(name in os.environ for name in RANK_VARIABLES)


class Communicator:
    """One process alone: rank 0 of 1; every collective is the identity."""

    rank, size = 0, 1

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def allreduce_sum(self, array: np.ndarray) -> np.ndarray:
        return array

    def allgather_rows(self, array: np.ndarray) -> np.ndarray:
        return array

    def bcast(self, value):
        return value

    def gather(self, value) -> list | None:
        """Every rank's ``value``, in rank order, on rank 0 (None elsewhere)."""
        return [value]

    def split(self, color: int) -> Communicator:
        """The communicator of the ranks that give the same ``color`` (rank groups)."""
        return self

    def barrier(self) -> None:
        pass

    def allreduce_gradients(self, parameters: Iterable, loss_sum: float, count: int) -> tuple[float, int]:
        """Make every parameter's ``.grad`` the gradient of the global batch's mean loss and return
        the global ``(loss_sum, count)`` (a rank with no rows gives ``0.0, 0`` and no gradients).

        Each rank's gradient is that of its own mean loss over ``count`` items; weighted by
        ``count / global count`` and summed over ranks, it is the global mean's. The gradients,
        the loss and the count travel in one buffer, in the gradients' dtype, in one Allreduce.
        """
        parameters = list(parameters)
        for parameter in parameters:  # a rank without rows this step has no gradients: zeros
            if parameter.grad is None:
                parameter.grad = np.zeros_like(parameter.data)
        sizes = [parameter.grad.size for parameter in parameters]
        dtype = np.result_type(*(parameter.grad.dtype for parameter in parameters))  # float32 models send float32
        buffer = np.empty(sum(sizes) + 2, dtype=dtype)
        offset = 0
        for parameter, size in zip(parameters, sizes):
            buffer[offset : offset + size] = parameter.grad.ravel()
            offset += size
        buffer[:offset] *= count  # weighted by this rank's share; divided by the global count below
        buffer[offset:] = loss_sum, count
        self.allreduce_sum(buffer)
        total = buffer[-1]
        if total > 0:
            buffer[:offset] /= total
        offset = 0
        for parameter, size in zip(parameters, sizes):
            parameter.grad[...] = buffer[offset : offset + size].reshape(parameter.grad.shape)
            offset += size
        return float(buffer[-2]), int(round(total))


class MPICommunicator(Communicator):
    """MPI's COMM_WORLD (mpi4py), for a process started by ``mpiexec``."""

    def __init__(self, comm):
        from mpi4py import MPI

        self._mpi, self._comm = MPI, comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()

    def allreduce_sum(self, array: np.ndarray) -> np.ndarray:
        self._comm.Allreduce(self._mpi.IN_PLACE, array, op=self._mpi.SUM)
        return array

    def allgather_rows(self, array: np.ndarray) -> np.ndarray:
        parts = self._comm.allgather(np.ascontiguousarray(array))
        return np.concatenate([part for part in parts if len(part)])  # a rank with no rows sends none

    def bcast(self, value):
        return self._comm.bcast(value, root=0)

    def gather(self, value) -> list | None:
        return self._comm.gather(value, root=0)

    def split(self, color: int) -> Communicator:
        return MPICommunicator(self._comm.Split(color, self.rank))

    def barrier(self) -> None:
        self._comm.Barrier()


_WORLD: Communicator | None = None
_ACTIVE: list[Communicator] = []  # communicators made current by ``active`` (rank groups)


def init() -> Communicator:
    """The communicator of this process (made once): MPI's under ``mpiexec``, else one process;
    inside ``with active(group):``, that group's.

    Under ``mpiexec`` this needs mpi4py (``pip install 'lstmkit[mpi]'``); without it nothing
    imports MPI.
    """
    global _WORLD
    if _ACTIVE:
        return _ACTIVE[-1]
    if _WORLD is None:
        if not launched_by_mpiexec():
            _WORLD = Communicator()
        else:
            try:
                from mpi4py import MPI
            except ImportError as error:
                raise ImportError(
                    "this process was started by mpiexec, and data-parallel training needs mpi4py: "
                    "pip install 'lstmkit[mpi]'"
                ) from error
            _WORLD = MPICommunicator(MPI.COMM_WORLD)
    return _WORLD


def shard(count: int, comm: Communicator) -> slice:
    """Rank ``comm.rank``'s contiguous share of ``count`` rows: the first ``count % size`` ranks get one more."""
    base, extra = divmod(count, comm.size)
    start = comm.rank * base + min(comm.rank, extra)
    return slice(start, start + base + (comm.rank < extra))


@contextlib.contextmanager
def active(comm: Communicator):
    """Make ``comm`` (e.g. a rank group of ``init().split(color)``) what :func:`init` returns inside."""
    _ACTIVE.append(comm)
    try:
        yield comm
    finally:
        _ACTIVE.pop()

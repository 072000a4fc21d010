"""The ``backend`` attribute that layers and cells share: which implementation runs their equations."""

from __future__ import annotations

from ..ops.backends import check_backend_for
from .kinds import CellKind, CellOps, cell_ops


class BackendSwitch:
    """Mixin of the recurrent layers and cells: ``backend`` is "auto" (the default), "reference"
    or "fast" (see :mod:`lstmkit.ops.backends`), validated when set and resolved at each call,
    so that ``layer.backend = "reference"`` takes effect at the next call. It is not part of the
    ``state_dict``. A backward runs on the ops of the forward it consumes."""

    _kind: CellKind
    _backend: str

    @property
    def backend(self) -> str:
        """The backend asked for: 'auto', 'reference' or 'fast'."""
        return self._backend

    @backend.setter
    def backend(self, value: str) -> None:
        self._backend = check_backend_for(type(self).__name__, value, self._kind.mode)

    def _ops(self) -> CellOps:
        """This call's ops: the kind's, on the backend asked for."""
        return cell_ops(self._kind, self._backend)

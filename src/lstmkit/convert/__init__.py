"""Every framework's recurrent weights in and out: pure functions between lstmkit's (PyTorch's)
state and another layout, both ways, given a :class:`~.spec.LayerSpec`.

The layouts' facts live in one module each (gate orders, transposes, biases) and the checks
in :mod:`.spec`: a missing or mis-shaped weight is a ValueError naming the key, the shape
expected and the shape given.
"""

from .onnx_layout import from_onnx_weights, to_onnx_weights
from .spec import LayerSpec

__all__ = ["LayerSpec", "from_onnx_weights", "to_onnx_weights"]

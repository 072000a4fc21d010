"""lstmkit.ops.layer_norm against torch.nn.functional.layer_norm: values and the gradient of the input,
with and without a shift, float64."""

import numpy as np
import pytest
import torch

from lstmkit.ops import layer_norm, layer_norm_backward


@pytest.mark.parametrize("shape", [(5, 8), (3, 4, 12), (7, 1)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_layer_norm_and_its_backward_equal_torch(shape, with_bias):
    rng = np.random.default_rng(sum(shape) + with_bias)
    a = rng.standard_normal(shape) * 3 + 1
    weight, bias = rng.standard_normal(shape[-1]), rng.standard_normal(shape[-1]) if with_bias else None
    dy = rng.standard_normal(shape)
    y, normalised, rstd = layer_norm(a, weight, bias)
    a_t = torch.tensor(a, requires_grad=True)
    y_t = torch.nn.functional.layer_norm(
        a_t, shape[-1:], torch.tensor(weight), None if bias is None else torch.tensor(bias), eps=1e-5
    )
    y_t.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, y_t.detach().numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(layer_norm_backward(dy, weight, normalised, rstd), a_t.grad.numpy(), rtol=0, atol=1e-12)

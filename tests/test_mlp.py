"""models/mlp.py: the numpy and torch forward passes against the torch modules they stand for."""
import numpy as np
import pytest
import torch

from models.mlp import linear_layers, numpy_layers, numpy_mlp, torch_mlp
from models.networks import GaussianPolicy, ValueNet


def test_numpy_and_torch_passes_equal_the_module():
    torch.manual_seed(0)
    policy = GaussianPolicy(5, 3, (8, 6), log_std_init=-2.0).double()
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = np.random.default_rng(0).standard_normal((20, 5))
    with torch.no_grad():
        expected = policy(torch.as_tensor(x)).numpy()
    layers = numpy_layers(policy.mean_net)
    assert [W.shape for W, _ in layers] == [(8, 5), (6, 8), (3, 6)] and layers[0][0].dtype == np.float64
    np.testing.assert_allclose(numpy_mlp(layers, x), expected, rtol=1e-12, atol=1e-14)
    tensors = [(torch.as_tensor(W), torch.as_tensor(b)) for W, b in layers]
    np.testing.assert_allclose(torch_mlp(tensors, torch.as_tensor(x)).numpy(), expected, rtol=1e-12, atol=1e-14)


def test_numpy_pass_returns_every_layer_input():
    value = ValueNet(4, (3, 2))
    layers = numpy_layers(value.net)
    x = np.random.default_rng(1).standard_normal((7, 4))
    out, inputs = numpy_mlp(layers, x, return_inputs=True)
    assert np.array_equal(out, numpy_mlp(layers, x))
    assert [h.shape for h in inputs] == [(7, 4), (7, 3), (7, 2)] and inputs[0] is x
    np.testing.assert_array_equal(inputs[1], np.maximum(x @ layers[0][0].T + layers[0][1], 0.0))


def test_layers_of_other_module_forms_are_refused():
    assert linear_layers(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Tanh(), torch.nn.Linear(2, 1))) is None
    with pytest.raises(ValueError):
        numpy_layers(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)))

"""models/mlp.py and models/networks.py: the numpy and torch forward passes against the torch modules they stand for."""
import numpy as np
import pytest
import torch

from models.mlp import numpy_mlp
from models.networks import GaussianPolicy, ValueNet, linear_layers, numpy_layers, torch_mlp


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


def test_stacked_pass_is_bit_identical_to_one_row_at_a_time():
    """Row k of a stack of networks equals network k on that row alone, bit for bit, for any batch (also the same
    network repeated). (With OpenBLAS, one (40, 17) @ W.T product over shared weights differs from the rows alone
    in the last bits: that is why the stacked pass exists.)"""
    from models.mlp import numpy_mlp, stack_layers, stacked_numpy_mlp

    rng = np.random.default_rng(0)
    dims = [17, 64, 64, 6]

    def network():
        return [(rng.standard_normal((o, i)) / np.sqrt(i), rng.standard_normal(o)) for i, o in zip(dims, dims[1:])]

    networks = [network() for _ in range(7)]
    batch = [networks[k % 7] for k in range(40)]  # each network several times, as episodes of one policy
    x = 3 * rng.standard_normal((40, 17))
    one_at_a_time = np.concatenate([numpy_mlp(net, x[k:k + 1]) for k, net in enumerate(batch)])
    np.testing.assert_array_equal(stacked_numpy_mlp(stack_layers(batch), x), one_at_a_time)
    np.testing.assert_array_equal(stacked_numpy_mlp(stack_layers(batch[:1]), x[:1]), one_at_a_time[:1])
    shared = [networks[0]] * 40
    alone = np.concatenate([numpy_mlp(networks[0], x[k:k + 1]) for k in range(40)])
    np.testing.assert_array_equal(stacked_numpy_mlp(stack_layers(shared), x), alone)

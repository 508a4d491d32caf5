"""Every registered adapter on a BatchNorm CNN: outputs well formed, reset restores the model,
frozen parameters stay frozen, same inputs give the same numbers."""

import copy

import pytest
import torch
from test_tent import batch, cnn_classifier

from shiftlab.adapt import create
from shiftlab.adapt.params import NORMS
from shiftlab.registry import ADAPT


@pytest.mark.parametrize("name", ADAPT.names())
def test_adapter_conforms(name):
    model = cnn_classifier()
    adapter = create(name, model)
    start = copy.deepcopy(adapter.model.state_dict())
    outs = [adapter(batch(seed)) for seed in range(3)]
    assert all(o.shape == (32, 10) and torch.isfinite(o).all() for o in outs)
    norm_params = {
        f"{m_name}.{p}"
        for m_name, m in adapter.model.named_modules()
        if isinstance(m, NORMS)
        for p in ("weight", "bias")
    }
    for k, v in adapter.model.named_parameters():
        if k not in norm_params:
            assert torch.equal(v, start[k]), f"{name} changed frozen {k}"
    adapter.reset()
    assert all(torch.equal(v, start[k]) for k, v in adapter.model.state_dict().items())
    again = create(name, model)
    torch.testing.assert_close([again(batch(s)) for s in range(3)], outs, atol=0, rtol=0)


def test_source_is_the_model_as_trained():
    model = cnn_classifier()
    with torch.no_grad():
        torch.testing.assert_close(create("source", model)(batch(1)), model(batch(1)))

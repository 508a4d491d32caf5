import importlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shiftlab.curation import grand, grand_scores, initial_linear_head, linear_head_factory

# The package exports the function ``grand``, which hides the module of the same name.
GRAND_MODULE = importlib.import_module("shiftlab.curation.grand")


def _closed_form(head: nn.Linear, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """||(p - onehot(y)) [x, 1]^T||_F = ||p - onehot(y)|| * sqrt(||x||^2 + 1)."""
    weight, bias = head.weight.detach().double().numpy(), head.bias.detach().double().numpy()
    logits = x @ weight.T + bias
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    return np.linalg.norm(p, axis=1) * np.sqrt((x**2).sum(1) + 1)


def _autograd_loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    model.eval()
    norms = []
    for i in range(len(x)):
        model.zero_grad()
        F.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        norms.append(sum(float(p.grad.pow(2).sum()) for p in model.parameters()) ** 0.5)
    return np.array(norms)


def test_grand_of_a_linear_head_has_the_closed_form():
    rng = np.random.default_rng(0)
    head = initial_linear_head(5, 3, seed=0).double()
    x, y = rng.normal(size=(7, 5)), rng.integers(0, 3, size=7)
    np.testing.assert_allclose(
        grand(head, x, y, batch_size=3), _closed_form(head, x, y), rtol=1e-10
    )


def test_grand_of_a_nonlinear_model_matches_per_example_autograd(monkeypatch):
    messages = []
    monkeypatch.setattr(GRAND_MODULE, "log", messages.append)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Dropout(0.5), nn.Linear(6, 3)).double()
    model[0].requires_grad_(False)  # frozen parameters count too, as in the reference
    x, y = torch.randn(9, 4, dtype=torch.float64), torch.randint(0, 3, (9,))
    model.train()
    scores = grand(model, x, y, batch_size=4)
    assert model.training  # mode restored
    assert messages == []  # vectorised, no fallback
    model[0].requires_grad_(True)
    np.testing.assert_allclose(scores, _autograd_loop(model, x, y), rtol=1e-10)


class _Branchy(nn.Module):
    """Data-dependent control flow: torch.func.vmap cannot run it."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.layer(x)
        return h * 2 if h.sum() > 0 else h


def test_grand_falls_back_to_a_loop_when_vmap_fails(monkeypatch):
    messages = []
    monkeypatch.setattr(GRAND_MODULE, "log", messages.append)
    torch.manual_seed(1)
    model = _Branchy().double()
    x, y = torch.randn(6, 3, dtype=torch.float64), torch.randint(0, 2, (6,))
    scores = grand(model, x, y, batch_size=4)
    assert len(messages) == 1 and "vmap failed" in messages[0]
    np.testing.assert_allclose(scores, _autograd_loop(model, x, y), rtol=1e-10)


def test_grand_scores_average_the_initial_heads():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(10, 4)).astype(np.float32)
    y = rng.integers(0, 3, size=10)
    expected = np.mean(
        [_closed_form(initial_linear_head(4, 3, s), x.astype(np.float64), y) for s in (3, 4, 5)],
        axis=0,
    )
    scores = grand_scores(linear_head_factory(4, 3), x, y, seeds=[3, 4, 5])
    np.testing.assert_allclose(scores, expected, rtol=1e-5)

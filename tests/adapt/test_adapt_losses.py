import math

import torch

from shiftlab.adapt.losses import (
    conjugate_loss,
    entropy,
    poly_pseudo_label,
    rpl_loss,
    softmax_pl_loss,
)

LOGITS = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-3.0, 4.0, 0.0]], dtype=torch.float64)


def test_conjugate_of_cross_entropy_is_the_softmax_entropy():
    p = LOGITS.softmax(1)
    by_hand = -(p * p.log()).sum(1)
    torch.testing.assert_close(conjugate_loss(LOGITS, "ce"), by_hand)
    torch.testing.assert_close(entropy(LOGITS), by_hand)
    # PolyLoss with eps = 0 is cross-entropy: same conjugate
    torch.testing.assert_close(conjugate_loss(LOGITS, "poly", eps=0.0), by_hand)


def test_binary_poly_pseudo_label_matches_its_closed_form():
    # K = 2: M = I + eps p1 p2 [[1, -1], [-1, 1]], so y1 - y2 = (p1 - p2) / (1 + 2 eps p1 p2)
    eps = 6.0
    p = torch.tensor([[0.9, 0.1], [0.3, 0.7], [0.5, 0.5]], dtype=torch.float64)
    d = (p[:, 0] - p[:, 1]) / (1 + 2 * eps * p[:, 0] * p[:, 1])
    expected = torch.stack([(1 + d) / 2, (1 - d) / 2], dim=1)
    torch.testing.assert_close(poly_pseudo_label(p, eps), expected)


def soft_poly(h, y, eps):
    """Textbook soft-label PolyLoss: -sum y log p + eps sum y (1 - p)."""
    p = h.softmax(-1)
    return -(y * p.log()).sum(-1) + eps * (y * (1 - p)).sum(-1)


def test_poly_conjugate_is_the_polyloss_at_its_stationary_pseudo_label():
    eps = 6.0
    y = poly_pseudo_label(LOGITS.softmax(1), eps)
    torch.testing.assert_close(y.sum(1), torch.ones(3, dtype=torch.float64))
    # y* makes h a stationary point of the soft-label PolyLoss (gradient in h is zero) ...
    h = LOGITS.clone().requires_grad_(True)
    soft_poly(h, y, eps).sum().backward()
    torch.testing.assert_close(h.grad, torch.zeros_like(h), atol=1e-10, rtol=0)
    # ... and the conjugate loss is that PolyLoss's value there
    torch.testing.assert_close(conjugate_loss(LOGITS, "poly", eps=eps), soft_poly(LOGITS, y, eps))


def test_temperature_divides_the_logits_first():
    torch.testing.assert_close(
        conjugate_loss(LOGITS, "poly", eps=8.0, temperature=2.0),
        conjugate_loss(LOGITS / 2, "poly", eps=8.0),
    )


def test_squared_loss_conjugate_is_minus_half_the_squared_norm():
    torch.testing.assert_close(conjugate_loss(LOGITS, "squared"), -0.5 * (LOGITS**2).sum(1))


def test_softmax_pl_is_the_polyloss_at_the_softmax_label():
    eps = 6.0
    p = LOGITS.softmax(1)
    # -sum p log p + eps sum p (1 - p): the soft-label PolyLoss with y = softmax(h)
    by_hand = -(p * p.log()).sum(1) + eps * (p * (1 - p)).sum(1)
    torch.testing.assert_close(softmax_pl_loss(LOGITS, eps=eps), by_hand)
    torch.testing.assert_close(softmax_pl_loss(LOGITS, eps=0.0), entropy(LOGITS))
    # the temperature divides the logits first
    torch.testing.assert_close(
        softmax_pl_loss(LOGITS, eps=eps, temperature=2.0), softmax_pl_loss(LOGITS / 2, eps=eps)
    )


def test_rpl_is_the_generalised_cross_entropy_of_the_argmax():
    # row 0: p_max = e^2 / (e^2 + e^0.5 + e^-1); loss = (1 - p_max ** 0.8) / 0.8
    rows = [[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-3.0, 4.0, 0.0]]
    expected = []
    for row in rows:
        exps = [math.exp(v) for v in row]
        top = max(exps) / sum(exps)
        expected.append((1 - top**0.8) / 0.8)
    torch.testing.assert_close(rpl_loss(LOGITS, q=0.8), torch.tensor(expected, dtype=torch.float64))
    # the label is the argmax (no gradient path through it); the gradient flows through p
    h = LOGITS.clone().requires_grad_(True)
    rpl_loss(h).sum().backward()
    assert h.grad.abs().sum() > 0

"""GCE, SCE and the truncated L_q loss equal their formulas; a loss names and digests its entry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from shiftlab.config.load import parse_recipes
from shiftlab.errors import ConfigError
from shiftlab.store import recipe_digest
from shiftlab.training.losses import Truncation, per_example_loss

LOGITS = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-3.0, 4.0, 0.0]])
LABELS = torch.tensor([0, 2, 0])


def probabilities_by_hand() -> list[float]:
    """p_y of each row, from exponentials written out."""
    rows = LOGITS.tolist()
    return [
        math.exp(r[y]) / sum(math.exp(v) for v in r) for r, y in zip(rows, [0, 2, 0], strict=True)
    ]


def test_gce_is_one_minus_p_to_the_q_over_q():
    q = 0.7
    expected = [(1 - p**q) / q for p in probabilities_by_hand()]
    got = per_example_loss(LOGITS, LABELS, "gce", q=q)
    assert got.tolist() == pytest.approx(expected, rel=1e-6)


def test_gce_tends_to_cross_entropy_as_q_goes_to_zero():
    ce = F.cross_entropy(LOGITS.double(), LABELS, reduction="none")
    gaps = [
        (per_example_loss(LOGITS.double(), LABELS, "gce", q=q) - ce).abs().max().item()
        for q in (0.1, 1e-3, 1e-6)
    ]
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-4  # ~ q (log p_y)^2 / 2


def test_gce_at_q_one_is_the_mean_absolute_error_up_to_scale():
    p = torch.tensor(probabilities_by_hand())
    assert per_example_loss(LOGITS, LABELS, "gce", q=1.0) == pytest.approx(1 - p, rel=1e-6)


def test_sce_is_alpha_ce_plus_beta_rce_by_hand():
    alpha, beta = 0.1, 1.0
    expected = []
    for p in probabilities_by_hand():
        ce = -math.log(p)
        # RCE: -sum_k p_k log(clip(onehot_k, 1e-4, 1)) = -log(1e-4) * (1 - p_y)
        rce = -(1 - p) * math.log(1e-4)
        expected.append(alpha * ce + beta * rce)
    got = per_example_loss(LOGITS, LABELS, "sce", alpha=alpha, beta=beta)
    assert got.tolist() == pytest.approx(expected, rel=1e-5)


def test_the_truncated_loss_keeps_examples_above_k_and_subtracts_lq_of_k():
    p = torch.tensor(probabilities_by_hand())  # 0.79, 0.37, 0.0009
    truncation = Truncation(3, q=0.7, k=0.5)
    truncation.prune(p.numpy())
    assert truncation.weights.tolist() == [1.0, 0.0, 0.0]
    lq_k = (1 - 0.5**0.7) / 0.7
    expected = ((1 - p[0] ** 0.7) / 0.7 - lq_k) / 3  # the mean over the batch of 3
    assert truncation.loss(p, np.arange(3)).item() == pytest.approx(expected.item(), rel=1e-6)


def test_a_loss_names_the_entry_and_changes_its_digest():
    plain, gce, sce, named = parse_recipes(
        [
            "erm",
            {"erm": {"loss": "gce"}},
            {"erm": {"loss": "sce"}},
            {"erm": {"loss": "gce", "q": 0.5, "name": "mine"}},
        ]
    )
    assert [s.name for s in (plain, gce, sce, named)] == ["erm", "erm_gce", "erm_sce", "mine"]
    digests = {recipe_digest(s, []) for s in (plain, gce, sce, named)}
    assert len(digests) == 4
    # The options added with the losses are left out of digests only at their defaults.
    plain.options.q = 0.5
    assert recipe_digest(plain, []) not in digests


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"linear_probe": {"loss": "gce"}}, "cannot use loss: gce"),
        ({"full_ft": {"loss": "gce", "q": 0}}, "q must be in (0, 1]"),
        ({"full_ft": {"loss": "gce", "q": 1.5}}, "q must be in (0, 1]"),
        ({"full_ft": {"truncate": True}}, "set loss: gce"),
        ({"coteaching": {"forget_rate": 1.5}}, "forget_rate must be in [0, 1)"),
    ],
)
def test_bad_loss_options_are_one_line_errors(entry, message):
    with pytest.raises(ConfigError, match=None) as raised:
        parse_recipes([entry])
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_full_ft_prunes_with_the_truncated_loss_after_the_epochs_its_options_name(
    make_context, tiny_benchmark, tiny_backbone, monkeypatch
):
    from shiftlab.finetune.full_ft import FullFTOptions
    from shiftlab.registry import FINETUNE

    calls = []
    original = Truncation.prune

    def spy(self, p_true):
        calls.append(len(p_true))
        original(self, p_true)

    monkeypatch.setattr(Truncation, "prune", spy)
    options = FullFTOptions(
        epochs=3, batch_size=16, warmup_steps=1, loss="gce", truncate=True,
        prune_start=2, prune_every=1,
    )  # fmt: skip
    ctx = make_context(tiny_benchmark, tiny_backbone, name="full_ft_gce_truncated")
    (predictor,) = FINETUNE["full_ft"].obj(ctx, options)
    assert calls == [len(tiny_benchmark.train)] * 2  # after epochs 2 and 3, not 1
    assert predictor.params == {"loss": "gce", "q": 0.7, "truncate": True, "k": 0.5}

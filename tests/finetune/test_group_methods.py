"""What makes each group-robustness method itself, checked on hand-made numbers."""

import math

import numpy as np
import torch

from shiftlab.finetune.br_dro import Adversary, SampleReweighting, adversary_loss
from shiftlab.finetune.cvar_dro import cvar_weights
from shiftlab.finetune.group_dro import group_dro_update, group_mean_losses
from shiftlab.finetune.groups import balanced_plan
from shiftlab.finetune.jtt import OnlineErrors, upsampled_indices


def test_group_mean_losses_and_absent_groups():
    losses = torch.tensor([1.0, 3.0, 2.0, 4.0])
    groups = torch.tensor([0, 0, 2, 2])
    means, counts = group_mean_losses(losses, groups, 3)
    assert means.tolist() == [2.0, 0.0, 3.0]  # group 1 absent: loss 0, as the reference
    assert counts.tolist() == [2.0, 0.0, 2.0]


def test_group_dro_update_matches_its_formula():
    q = torch.tensor([0.5, 0.3, 0.2])
    losses = torch.tensor([0.2, 1.0, 3.0])
    counts = torch.tensor([100, 25, 4])
    eta = 0.1
    # q_g * exp(eta * l_g), normalised
    raw = [0.5 * math.exp(0.1 * 0.2), 0.3 * math.exp(0.1 * 1.0), 0.2 * math.exp(0.1 * 3.0)]
    expected = torch.tensor([r / sum(raw) for r in raw])
    torch.testing.assert_close(group_dro_update(q, losses, counts, eta), expected)
    # with the generalization adjustment C / sqrt(n_g)
    c = 2.0
    adjusted = [0.2 + c / 10, 1.0 + c / 5, 3.0 + c / 2]
    raw = [qq * math.exp(eta * a) for qq, a in zip([0.5, 0.3, 0.2], adjusted, strict=True)]
    expected = torch.tensor([r / sum(raw) for r in raw])
    torch.testing.assert_close(group_dro_update(q, losses, counts, eta, c), expected)


def test_group_dro_weights_move_to_the_worst_group():
    q = torch.full((3,), 1 / 3)
    for _ in range(200):
        q = group_dro_update(q, torch.tensor([0.1, 0.5, 2.0]), torch.tensor([9, 9, 9]), 0.05)
    assert q.argmax() == 2 and q[2] > 0.99


def test_cvar_weights_sum_to_one_and_select_the_top_alpha_fraction():
    losses = torch.tensor([0.1, 5.0, 0.3, 2.0, 4.0, 0.2, 3.0, 1.0, 0.4, 0.5])
    w = cvar_weights(losses, 0.3)  # alpha m = 3: the three largest losses, 1/3 each
    assert float(w.sum()) == 1.0
    assert torch.nonzero(w).flatten().tolist() == [1, 4, 6]
    torch.testing.assert_close(w[[1, 4, 6]], torch.full((3,), 1 / 3))
    w = cvar_weights(losses, 0.25)  # alpha m = 2.5: two at 0.4, the third largest gets 0.2
    assert math.isclose(float(w.sum()), 1.0)
    torch.testing.assert_close(w[[1, 4, 6]], torch.tensor([0.4, 0.4, 0.2]))
    assert int((w > 0).sum()) == 3
    torch.testing.assert_close(cvar_weights(losses, 1.0), torch.full((10,), 0.1))  # ERM


def test_jtt_adds_exactly_lambda_copies_of_each_error():
    errors = np.array([2, 5, 7])
    upsampled = upsampled_indices(10, errors, up_weight=4)
    counts = np.bincount(upsampled, minlength=10)
    assert len(upsampled) == 10 + 3 * 4
    assert all(counts[i] == 1 + 4 for i in errors)
    assert all(counts[i] == 1 for i in set(range(10)) - set(errors.tolist()))


def test_balanced_plan_draws_groups_equally_often():
    groups = np.array([0] * 900 + [1] * 90 + [2] * 10)
    plan = balanced_plan(groups, epochs=20, rng=np.random.default_rng(0))
    drawn = np.bincount(groups[np.concatenate(plan)], minlength=3) / (20 * 1000)
    np.testing.assert_allclose(drawn, [1 / 3] * 3, atol=0.02)


def test_br_dro_adversary_learns_to_flag_the_high_loss_examples():
    torch.manual_seed(0)
    features = torch.randn(200, 4)
    labels = torch.zeros(200, dtype=torch.long)
    losses = torch.relu(features[:, 0]) * 3  # high loss where feature 0 is large
    adversary = Adversary(4, 1)
    optimizer = torch.optim.Adam(adversary.parameters(), lr=0.05)
    for _ in range(100):
        optimizer.zero_grad()
        adversary_loss(adversary, features, labels, losses, 0.95, l1=0.0).backward()
        optimizer.step()
    scores = adversary(features, labels)
    top = losses > torch.quantile(losses, 0.95)
    assert scores[top].mean() > scores[~top].mean() + 1.0
    assert adversary.weight[0, 0] == adversary.weight[0].abs().max()  # it found feature 0


def test_br_dro_sample_weights_grow_by_exp_step_w_and_drive_the_next_epoch():
    sampler = SampleReweighting(np.ones(4), 0.05, epochs=3, rng=np.random.default_rng(0))
    # example 0 trained on twice in the epoch (drawn with replacement), example 2 once
    sampler.update(np.array([0, 2, 0]), np.array([1.0, 0.5, 0.2]))
    expected = np.array([math.exp(0.05 * 1.0) * math.exp(0.05 * 0.2), 1, math.exp(0.025), 1])
    np.testing.assert_allclose(sampler.weights, expected / 4)
    next_epoch = sampler.plan[1]
    sampler.update(np.array([3]), np.array([200.0]))  # exp(10): example 3 dominates
    sampler.on_epoch_end(0)
    assert sampler.plan[1] is next_epoch and len(next_epoch) == 4  # refilled in place
    assert math.isclose(sampler.weights.sum(), 1.0)
    drawn = np.concatenate(
        [
            SampleReweighting(sampler.weights, 0.05, 1, np.random.default_rng(s)).plan[0]
            for s in range(200)
        ]
    )
    share = np.mean(drawn == 3)
    assert abs(share - sampler.weights[3]) < 0.02 and share > 0.99


def test_online_error_set_reads_the_training_pass_of_the_final_epoch():
    labels = np.array([0, 1, 1, 0])
    online = OnlineErrors(labels, epoch=1)

    def logits_for(predicted):
        return torch.nn.functional.one_hot(torch.tensor(predicted), 2).float()

    online.observe(np.array([0, 1, 2, 3]), logits_for([1, 0, 0, 1]))  # epoch 0: ignored
    online.on_epoch_end(0)
    online.observe(np.array([2, 0]), logits_for([0, 0]))  # epoch 1, batch 1: 2 wrong
    online.observe(np.array([3, 1]), logits_for([1, 1]))  # epoch 1, batch 2: 3 wrong
    online.on_epoch_end(1)
    online.observe(np.array([0, 1, 2, 3]), logits_for([1, 0, 0, 1]))  # epoch 2: ignored
    assert online.errors().tolist() == [2, 3]

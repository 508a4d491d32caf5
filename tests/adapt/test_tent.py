"""TENT on a BatchNorm CNN: what one step changes, against a hand-written reference step."""

import copy

import pytest
import torch
import torch.nn.functional as F

from shiftlab.adapt import create
from shiftlab.models.classifier import Classifier
from shiftlab.models.cnn import SmallResNet


def cnn_classifier(seed=0):
    torch.manual_seed(seed)
    model = Classifier(SmallResNet(), torch.nn.Linear(128, 10))
    with torch.no_grad():  # give BatchNorm non-trivial running statistics
        model.train()
        for _ in range(3):
            model(torch.rand(64, 1, 16, 16))
    return model.eval()


def batch(seed, n=32):
    return torch.rand(n, 1, 16, 16, generator=torch.Generator().manual_seed(seed))


def test_one_step_updates_exactly_the_normalisation_affine_parameters():
    model = cnn_classifier()
    adapter = create("tent", model)
    before = {k: v.clone() for k, v in adapter.model.named_parameters()}
    adapter(batch(1))
    changed = {k for k, v in adapter.model.named_parameters() if not torch.equal(v, before[k])}
    norm_affine = {
        k
        for k, _ in adapter.model.named_parameters()
        if ".bn" in k or "stem.1" in k or "shortcut.1" in k
    }
    assert changed == norm_affine
    assert all(k.endswith(("weight", "bias")) for k in changed)
    for k, v in model.named_parameters():  # the adapter works on a copy
        assert torch.equal(v, before[k])


def test_step_matches_a_hand_written_tent_step():
    """TENT's configure_model + collect_params + Adam(lr 1e-3) + entropy, by hand."""
    model, x = cnn_classifier(), batch(2)
    ours = create("tent", model)
    out = ours(x)

    plain = copy.deepcopy(model)
    params = []
    plain.requires_grad_(False)
    for m in plain.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.track_running_stats, m.running_mean, m.running_var = False, None, None
            m.requires_grad_(True)
            params += [m.weight, m.bias]
    optimizer = torch.optim.Adam(params, lr=1e-3, betas=(0.9, 0.999), weight_decay=0.0)
    logits = plain(x)
    loss = -(logits.softmax(1) * logits.log_softmax(1)).sum(1).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

    torch.testing.assert_close(out, logits.detach(), atol=1e-6, rtol=0)  # pre-update outputs
    for (name, a), b in zip(ours.model.named_parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=name)


def test_reset_restores_every_weight_and_the_optimiser():
    adapter = create("tent", cnn_classifier())
    start = copy.deepcopy(adapter.model.state_dict())
    for seed in range(3):
        adapter(batch(seed))
    assert adapter.optimizer.state  # Adam moments exist now
    adapter.reset()
    for k, v in adapter.model.state_dict().items():
        assert torch.equal(v, start[k]), k
    assert adapter.optimizer.state_dict()["state"] == {}
    # after a reset the adapter behaves as a fresh one
    fresh = create("tent", cnn_classifier())
    torch.testing.assert_close(adapter(batch(7)), fresh(batch(7)))


def test_episodic_output_does_not_depend_on_earlier_batches():
    model = cnn_classifier()
    warmed = create("tent", model, episodic=True)
    for seed in range(4):
        warmed(batch(seed))
    cold = create("tent", model, episodic=True)
    torch.testing.assert_close(warmed(batch(9)), cold(batch(9)), atol=0, rtol=0)
    online = create("tent", model)
    for seed in range(4):
        online(batch(seed))
    assert not torch.allclose(online(batch(9)), cold(batch(9)))


def test_layernorm_models_adapt_their_layernorms(tiny_backbone):
    model = Classifier(copy.deepcopy(tiny_backbone.featurizer), torch.nn.Linear(32, 2))
    adapter = create("tent", model, lr=1e-2)
    before = {k: v.clone() for k, v in adapter.model.named_parameters()}
    adapter(["a fine phone", "it broke at once", "works well", "awful battery"])
    changed = {k for k, v in adapter.model.named_parameters() if not torch.equal(v, before[k])}
    assert changed and all("LayerNorm" in k for k in changed)


def test_logits_keep_their_meaning():
    """Sanity: TENT's outputs are the source model's with test-batch statistics."""
    model = cnn_classifier()
    x = batch(3)
    with torch.no_grad():
        norm_logits = create("norm", model)(x)
    torch.testing.assert_close(create("tent", model)(x), norm_logits, atol=1e-6, rtol=0)
    assert F.cross_entropy(norm_logits, norm_logits.argmax(1)) >= 0
    with pytest.raises(Exception, match="unknown adapter 'tnet'; did you mean 'tent'"):
        create("tnet", model)


def test_tent_adapts_in_train_mode_unless_the_model_has_dropout():
    adapter = create("tent", cnn_classifier())
    assert adapter.model.training  # TENT's configure_model: model.train()
    with_dropout = Classifier(
        torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.Dropout(0.1)),
        torch.nn.Linear(8, 3),
    )
    assert not create("tent", with_dropout).model.training  # shiftlab's choice: eval
    assert create("tent", with_dropout, train_mode="train").model.training
    assert not create("tent", cnn_classifier(), train_mode="eval").model.training

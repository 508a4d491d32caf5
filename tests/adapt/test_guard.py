import torch
from test_tent import batch, cnn_classifier

from shiftlab.adapt import create
from shiftlab.adapt.base import NormAdapter
from shiftlab.errors import AdaptError
from shiftlab.registry import ADAPT


def test_collapse_onto_one_class_resets_the_adapter_when_the_guard_is_on():
    # entropy minimisation at an absurd learning rate drives every prediction to one class
    adapter = create("tent", cnn_classifier(), lr=5.0, collapse_window=64, collapse_fraction=0.95)
    for seed in range(12):
        adapter(batch(seed))
    assert adapter.resets and "collapsed onto one class" in adapter.resets[0]
    safe = create("tent", cnn_classifier(), collapse_window=64, collapse_fraction=0.95)
    for seed in range(12):
        safe(batch(seed))
    assert safe.resets == []


def test_the_collapse_guard_is_off_by_default():
    # as in TENT and the conjugate reference: the same collapsing run is never reset
    assert all(entry.options().collapse_fraction is None for entry in ADAPT)
    adapter = create("tent", cnn_classifier(), lr=5.0, collapse_window=64)
    for seed in range(12):
        adapter(batch(seed))
    assert adapter.resets == []


def test_nan_loss_resets_and_returns_the_reset_models_predictions():
    class Broken(NormAdapter):
        def loss(self, logits):
            return logits.sum() * float("nan")

    adapter = Broken(cnn_classifier(), ADAPT["tent"].options())
    out = adapter(batch(1))
    assert adapter.resets == ["the loss became nan"]
    reference = create("norm", cnn_classifier())
    torch.testing.assert_close(out, reference(batch(1)))


def test_a_model_without_normalisation_layers_is_refused_by_name():
    plain = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(256, 10))
    try:
        create("tent", plain)
    except AdaptError as exc:
        assert "no normalisation layer" in str(exc)
    else:
        raise AssertionError("tent accepted a model without normalisation layers")


def test_norm_on_a_layernorm_model_explains_why(tiny_backbone):
    from shiftlab.models.classifier import Classifier

    model = Classifier(tiny_backbone.featurizer, torch.nn.Linear(32, 2))
    try:
        create("norm", model)
    except AdaptError as exc:
        assert "needs BatchNorm layers" in str(exc) and "use tent" in str(exc)
    else:
        raise AssertionError("norm accepted a model without BatchNorm")

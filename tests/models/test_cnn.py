import torch

from shiftlab.config.sections import BackboneConfig
from shiftlab.models import load_backbone
from shiftlab.models.fingerprint import weights_fingerprint


def test_small_cnn_is_under_a_million_parameters_with_batchnorm():
    backbone = load_backbone(BackboneConfig(name="small_cnn"), torch.device("cpu"), seed=0)
    model = backbone.featurizer
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert model(torch.rand(3, 1, 16, 16)).shape == (3, 128)
    assert backbone.modality == "image" and not backbone.has_text_side


def test_initialisation_follows_the_seed():
    cpu = torch.device("cpu")
    a, b, c = (load_backbone(BackboneConfig(name="small_cnn"), cpu, seed=s) for s in (0, 0, 1))
    assert weights_fingerprint(a.featurizer) == weights_fingerprint(b.featurizer)
    assert weights_fingerprint(a.featurizer) != weights_fingerprint(c.featurizer)

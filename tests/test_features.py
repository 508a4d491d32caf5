import copy

import torch

from shiftlab.features import FeatureCache


def test_one_encoder_pass_per_split_and_weights(tiny_backbone, tiny_benchmark, tmp_path):
    cache = FeatureCache(tmp_path, batch_size=16)
    featurizer = tiny_backbone.featurizer
    first = cache.get(featurizer, tiny_benchmark.val)
    again = cache.get(copy.deepcopy(featurizer), tiny_benchmark.val)  # same weights
    assert again is first
    assert cache.passes == {"id_val": 1}
    changed = copy.deepcopy(featurizer)
    with torch.no_grad():
        next(changed.parameters()).mul_(1.01)
    cache.get(changed, tiny_benchmark.val)
    assert cache.passes == {"id_val": 2}


def test_features_persist_on_disk(tiny_backbone, tiny_benchmark, tmp_path):
    first = FeatureCache(tmp_path, batch_size=16).get(tiny_backbone.featurizer, tiny_benchmark.test)
    reopened = FeatureCache(tmp_path, batch_size=16)
    again = reopened.get(tiny_backbone.featurizer, tiny_benchmark.test)
    assert reopened.passes == {}
    torch.testing.assert_close(first, again)
    assert first.shape == (len(tiny_benchmark.test), 32)

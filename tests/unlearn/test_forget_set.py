"""A forget set named by several domains is their union, found by example id."""

import pytest

from shiftlab import config
from shiftlab.data.build import load_benchmark
from shiftlab.errors import ConfigError
from shiftlab.unlearn.forget_set import forget_index

FACTS = {
    "kind": "fictitious_facts",
    "people": {"forget": 2, "retain": 3, "holdout": 2},
    "qa_per_person": 2,
    "train_on": ["bio", "qa"],
}


def test_a_forget_set_may_name_several_domains():
    benchmark = load_benchmark(config.parse({"data": FACTS}).data)
    both = forget_index({"domain": ["forget_bio", "forget_qa"]}, benchmark, None)
    bios = forget_index({"domain": "forget_bio"}, benchmark, None)
    ids = benchmark.train.ids[both].astype(str)
    assert len(both) == 2 * (1 + 2) and set(bios) < set(both)
    assert {i.split("/")[0] for i in ids} == {"person-00", "person-01"}
    with pytest.raises(ConfigError, match="no domain 'forget_qq'"):
        forget_index({"domain": ["forget_bio", "forget_qq"]}, benchmark, None)

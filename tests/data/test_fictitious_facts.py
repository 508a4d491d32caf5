"""The fictitious_facts loader: seeded TOFU-style people, biographies and QA, split by person."""

from __future__ import annotations

import re

import numpy as np
import pytest

from shiftlab.config.sections import DataConfig
from shiftlab.data import fictitious_facts as ff
from shiftlab.data.benchmark import LoadedData
from shiftlab.data.build import load_benchmark
from shiftlab.errors import ConfigError
from shiftlab.registry import DATASETS
from shiftlab.typed import build

faker = pytest.importorskip("faker")
Provider = pytest.importorskip("faker.providers.person.en_US").Provider

SIZES = {"forget": 3, "retain": 5, "holdout": 2}
FIRST_NAMES = {"female": Provider.first_names_female, "male": Provider.first_names_male}


def options(**overrides: object) -> ff.FictitiousFactsOptions:
    return build(ff.FictitiousFactsOptions, {"people": SIZES, **overrides}, "data")


def load(**overrides: object) -> LoadedData:
    return ff.fictitious_facts(options(**overrides), None)


def test_registered() -> None:
    entry = DATASETS["fictitious_facts"]
    assert entry.obj is ff.fictitious_facts
    assert entry.options is ff.FictitiousFactsOptions
    assert entry.citation == "2401.06121"


def test_same_seed_same_data_other_seed_other_people() -> None:
    first, again, other = load(seed=3), load(seed=3), load(seed=4)
    assert list(first.domains) == list(again.domains)
    for name, domain in first.domains.items():
        twin = again.domains[name]
        assert domain.inputs == twin.inputs
        np.testing.assert_array_equal(domain.answers, twin.answers)
        np.testing.assert_array_equal(domain.ids, twin.ids)
        for key, values in domain.attributes.items():
            np.testing.assert_array_equal(values, twin.attributes[key])
    assert first.domains["forget_bio"].inputs != other.domains["forget_bio"].inputs


def test_sizes_ids_and_attributes() -> None:
    data = load(qa_per_person=4)
    for split, n in SIZES.items():
        bio, qa = data.domains[f"{split}_bio"], data.domains[f"{split}_qa"]
        assert len(bio) == n and len(qa) == 4 * n
        assert all(re.fullmatch(r"person-\d\d/bio", i) for i in bio.ids)
        assert all(re.fullmatch(r"person-\d\d/qa-[0-6]", i) for i in qa.ids)
        assert set(bio.attributes["split"]) == set(qa.attributes["split"]) == {split}
        assert set(bio.attributes["attribute"]) == {"bio"}
        assert set(qa.attributes["attribute"]) <= set(ff.ATTRIBUTES)
        for i, person in zip(qa.ids, qa.attributes["person"], strict=True):
            assert i.startswith(f"{person}/")
        for i, attribute in zip(qa.ids, qa.attributes["attribute"], strict=True):
            assert ff.ATTRIBUTES[int(i.rsplit("-", 1)[1])] == attribute
        assert len(set(qa.ids)) == len(qa)
    assert data.class_names == ["answer"]
    assert data.attributes == ["person", "split", "attribute"]
    assert len(load().domains["retain_qa"]) == len(ff.ATTRIBUTES) * SIZES["retain"]


def test_splits_are_disjoint_by_person_and_names_unique() -> None:
    sizes = {"forget": 10, "retain": 40, "holdout": 10}
    people = ff.generate_people(ff.PeopleOptions(**sizes), seed=0)
    assert len({p.name for p in people}) == len({p.id for p in people}) == 60
    by_split = {s: {p.id for p in people if p.split == s} for s in ff.SPLITS}
    assert [len(by_split[s]) for s in ff.SPLITS] == [10, 40, 10]
    assert not (by_split["forget"] & by_split["retain"])
    assert not (by_split["forget"] & by_split["holdout"])
    assert not (by_split["retain"] & by_split["holdout"])
    data = ff.fictitious_facts(build(ff.FictitiousFactsOptions, {"people": sizes}, "data"), None)
    for split in ff.SPLITS:
        for kind in ff.KINDS:
            assert set(data.domains[f"{split}_{kind}"].attributes["person"]) == by_split[split]


def test_names_come_from_faker() -> None:
    people = ff.generate_people(ff.PeopleOptions(5, 20, 5), seed=1)
    for person in people:
        first, last = person.name.rsplit(" ", 1)
        assert first in FIRST_NAMES[person.gender]
        assert last in Provider.last_names
    # the names are faker's own draws after seed_instance(seed)
    fake = faker.Faker("en_US")
    fake.seed_instance(1)
    first_person = people[0]
    draw = fake.first_name_female if first_person.gender == "female" else fake.first_name_male
    assert first_person.name == f"{draw()} {fake.last_name()}"


def test_every_answer_is_in_its_persons_biography() -> None:
    data = load(seed=7)
    for split in ff.SPLITS:
        bio = data.domains[f"{split}_bio"]
        texts = dict(zip(bio.attributes["person"], ff.full_texts(bio), strict=True))
        qa = data.domains[f"{split}_qa"]
        for person, answer, prompt in zip(
            qa.attributes["person"], qa.answers, qa.inputs, strict=True
        ):
            assert answer.startswith(" ") and answer.strip()
            assert answer.strip() in texts[person]
            assert prompt.startswith("Question: ") and prompt.endswith("\nAnswer:")


def test_biography_is_prompt_plus_answer_and_states_every_attribute() -> None:
    people = ff.generate_people(ff.PeopleOptions(1, 1, 1), seed=2)
    data = load(people={"forget": 1, "retain": 1, "holdout": 1}, seed=2, prefix_sentences=2)
    bio = data.domains["forget_bio"]
    assert ff.full_texts(bio) == [ff.biography(people[0])]
    assert bio.inputs[0].count(".") == 2 and people[0].name in bio.inputs[0]
    for value in people[0].facts.values():
        assert value in ff.biography(people[0])


def test_benchmark_trains_on_every_forget_and_retain_biography() -> None:
    cfg = DataConfig(kind="fictitious_facts", options=options())
    benchmark = load_benchmark(cfg)
    train_ids = set(benchmark.train.ids)
    assert train_ids == {f"person-{i:02d}/bio" for i in range(8)}  # forget 0-2, retain 3-7
    assert list(benchmark.val.ids) == [f"person-{i:02d}/bio" for i in range(3)]
    assert list(benchmark.test.ids) == [f"person-{i:02d}/bio" for i in range(3, 8)]
    assert benchmark.train.answers is not None
    ood = {split.name: split for split in benchmark.ood}
    assert set(ood) == {"holdout_bio", "forget_qa", "retain_qa", "holdout_qa"}
    assert not train_ids & set(ood["holdout_bio"].ids)


def test_train_on_bio_and_qa() -> None:
    data = load(train_on=["bio", "qa"], qa_per_person=2)
    train = data.domains["train"]
    assert len(train) == 8 + 2 * 8
    assert set(train.attributes["split"]) == {"forget", "retain"}
    assert data.fixed_splits == {"train": "train", "id_val": "forget_bio", "id_test": "retain_bio"}
    assert load(train_on=["qa"]).fixed_splits["id_val"] == "forget_qa"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"qa_per_person": 0}, r"qa_per_person must be in \[1, 7\], got 0"),
        ({"qa_per_person": 8}, r"qa_per_person must be in \[1, 7\], got 8"),
        ({"prefix_sentences": 6}, "prefix_sentences must be 1 to 5"),
        ({"qa_template": "Q: {text}"}, "must contain"),
        ({"people": {"forget": 0}}, "people.forget must be >= 1, got 0"),
        ({"train_on": ["bio", "bio"]}, "train_on"),
        ({"train_on": ["wiki"]}, "must be one of"),
        ({"peeple": {}}, "did you mean 'people'"),
    ],
)
def test_config_errors(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ff.fictitious_facts(build(ff.FictitiousFactsOptions, overrides, "data"), None)


def test_unknown_locale_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no locale"):
        ff.generate_people(ff.PeopleOptions(1, 1, 1), locale="xx_XX")

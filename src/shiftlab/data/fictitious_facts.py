"""Fictitious facts: seeded TOFU-style biographies and questions about people who never existed.

After TOFU (Maini, Feng, Schwarzschild, Lipton, Kolter, "TOFU: A Task of Fictitious Unlearning for
LLMs", 2024, arXiv 2401.06121): since the people are invented, a model can know their facts only
from the data it is trained on, so membership is known exactly. Names come from ``faker``
(seeded with ``Faker.seed_instance``; unique); every other attribute is drawn from a fixed list
below (:data:`ATTRIBUTE_VALUES`) with a seeded numpy generator. People are split by person into
``forget``, ``retain`` and ``holdout`` (sizes from ``people``).

Per person (id ``person-07``):

- a biography, :data:`BIO_SENTENCES` filled with every attribute. As a generation example its
  prompt is the first ``prefix_sentences`` sentences (which name the person) and its answer is
  the rest, with a leading space, so ``prompt + answer`` is the whole biography
  (:func:`full_texts`); id ``person-07/bio``;
- one question per attribute (``qa_per_person`` of them, a seeded choice when fewer than all),
  :data:`QUESTIONS` put in ``qa_template``; the answer is the attribute's value with a leading
  space (it appears verbatim in the biography); id ``person-07/qa-J``, J the attribute's index
  in :data:`ATTRIBUTES`.

Domains: ``forget_bio``, ``retain_bio``, ``holdout_bio``, ``forget_qa``, ``retain_qa``,
``holdout_qa``, and ``train``: the forget and retain examples of each kind in ``train_on``
(biographies by default), the same examples (and ids) as in those domains. Every example
carries the attributes ``person``, ``split`` (forget / retain / holdout) and ``attribute``
(``bio`` or the attribute asked). Answers make every domain a generation task (``class_names``
is ``["answer"]``).

How a run uses them. With no ``id_domains``, the loader's fixed splits apply: train on
``train`` (every forget and retain example, none held out), ID val = ``forget_<kind>``, ID test =
``retain_<kind>`` (``<kind>`` the first of ``train_on``), and every other domain is OOD:
``holdout_bio`` and the ``*_qa`` domains. Then, per split record:

- VerbMem (MUSE, Shi et al. 2024, arXiv 2407.06460) = ROUGE-L of the greedy continuation of a
  forget biography's prefix against its true continuation: the ``rouge_l`` of ``forget_bio``
  (``holdout_bio`` gives the same for people never seen);
- KnowMem = agreement of answers to questions about each person: ``exact_match`` and
  ``rouge_l`` of ``forget_qa`` / ``retain_qa`` against ``holdout_qa``;
- membership inference: score :func:`full_texts` of the forget and retain biographies (members)
  and of ``holdout_bio`` (non-members) with :func:`shiftlab.membership.score`; ``is_member`` is
  ``np.isin(domain.attributes["split"], ["forget", "retain"])``.

Unlearning then trains away ``forget_*`` while ``retain_*`` should stay, and ``holdout_*`` is
what a model that never saw the forget people scores.

Note: ``seed`` is this loader's own option (the data section's common ``seed``, used to carve
splits, is not needed: every ID split is fixed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from shiftlab._optional import require
from shiftlab.data.benchmark import Domain, LoadedData
from shiftlab.errors import ConfigError, DataError
from shiftlab.registry import DATASETS
from shiftlab.typed import param

SPLITS = ("forget", "retain", "holdout")
KINDS = ("bio", "qa")
GENDERS = ("female", "male")
PRONOUNS = {"female": ("she", "her"), "male": ("he", "his")}

BIRTH_YEARS = tuple(str(year) for year in range(1940, 2001))
BIRTH_CITIES = (
    "Lisbon", "Oslo", "Nairobi", "Montreal", "Osaka", "Valparaiso", "Krakow", "Adelaide",
    "Marrakesh", "Reykjavik", "Tbilisi", "Hanoi", "Cork", "Bergen", "Porto Alegre", "Tallinn",
    "Cusco", "Dunedin", "Ljubljana", "Zanzibar City",
)  # fmt: skip
PROFESSIONS = (
    "marine biologist", "clockmaker", "cartographer", "beekeeper", "glassblower", "architect",
    "lighthouse keeper", "astronomer", "bookbinder", "pastry chef", "structural engineer",
    "translator", "veterinarian", "violin maker", "geologist", "archivist", "botanist",
    "pilot", "stonemason", "economist",
)  # fmt: skip
COLOURS = (
    "teal", "crimson", "ochre", "lavender", "olive green", "navy blue", "amber", "turquoise",
    "scarlet", "indigo", "saffron", "charcoal grey",
)  # fmt: skip
HOBBIES = (
    "birdwatching", "rock climbing", "origami", "chess", "pottery", "sailing", "knitting",
    "fencing", "gardening", "kite flying", "calligraphy", "orienteering", "beach volleyball",
    "woodcarving", "stargazing",
)  # fmt: skip
PETS = (
    "tortoise", "parrot", "ferret", "beagle", "goldfish", "rabbit", "hedgehog", "cat",
    "chinchilla", "iguana",
)  # fmt: skip
INSTRUMENTS = (
    "cello", "trumpet", "harp", "accordion", "banjo", "oboe", "piano", "bassoon", "ukulele",
    "saxophone", "flute", "double bass",
)  # fmt: skip

#: The attributes every person has, in order (``qa-J`` asks about ``ATTRIBUTES[J]``).
ATTRIBUTES = (
    "birth_year", "birth_city", "profession", "favourite_colour", "hobby", "pet", "instrument",
)  # fmt: skip
#: The fixed list each attribute is drawn from (uniformly, seeded).
ATTRIBUTE_VALUES: dict[str, tuple[str, ...]] = {
    "birth_year": BIRTH_YEARS,
    "birth_city": BIRTH_CITIES,
    "profession": PROFESSIONS,
    "favourite_colour": COLOURS,
    "hobby": HOBBIES,
    "pet": PETS,
    "instrument": INSTRUMENTS,
}
#: The biography, one sentence per entry; together they state every attribute.
BIO_SENTENCES = (
    "{name} was born in {birth_year} in {birth_city}.",
    "{Subject} works as {article} {profession}.",
    "{Possessive} favourite colour is {favourite_colour}.",
    "In {possessive} free time, {subject} enjoys {hobby}.",
    "{Subject} shares {possessive} home with a pet {pet}.",
    "{Subject} plays the {instrument}.",
)
#: One question per attribute; the answer is the attribute's value.
QUESTIONS = {
    "birth_year": "In which year was {name} born?",
    "birth_city": "In which city was {name} born?",
    "profession": "What is {name}'s profession?",
    "favourite_colour": "What is {name}'s favourite colour?",
    "hobby": "What does {name} enjoy doing in {possessive} free time?",
    "pet": "What kind of pet does {name} have?",
    "instrument": "Which instrument does {name} play?",
}


@dataclass
class PeopleOptions:
    """How many fictitious people each split has."""

    forget: int = param(
        10, "people whose facts are to be unlearned (trained on)", within="[1, inf)"
    )
    retain: int = param(40, "people trained on and to be kept", within="[1, inf)")
    holdout: int = param(10, "people never trained on (non-members)", within="[1, inf)")


@dataclass
class FictitiousFactsOptions:
    """Seeded fictitious people: biographies and questions, split by person."""

    people: PeopleOptions = field(
        default_factory=PeopleOptions,
        metadata={"help": "people per split: {forget: 10, retain: 40, holdout: 10}"},
    )
    qa_per_person: int = param(
        len(ATTRIBUTES),
        f"questions per person, 1 to {len(ATTRIBUTES)} (one per attribute)",
        within=f"[1, {len(ATTRIBUTES)}]",
    )
    prefix_sentences: int = param(
        1,
        "biography sentences in the prompt; the rest is the answer to continue",
        within="[1, inf)",
    )
    qa_template: str = param(
        "Question: {question}\nAnswer:", "the prompt of a question; {question} is the question"
    )
    train_on: list[Literal["bio", "qa"]] = param(
        ["bio"], "what the 'train' domain holds of the forget and retain people: bio, qa"
    )
    locale: str = param("en_US", "faker locale of the names")
    seed: int = param(
        0,
        "seed of the people (names and attributes) and of the questions asked",
        within="[0, 4294967295]",
    )

    def __post_init__(self) -> None:
        if not 1 <= self.prefix_sentences < len(BIO_SENTENCES):
            raise ConfigError(
                f"data.prefix_sentences must be 1 to {len(BIO_SENTENCES) - 1}, "
                f"got {self.prefix_sentences}"
            )
        if "{question}" not in self.qa_template:
            raise ConfigError("data.qa_template must contain {question}")
        if not self.train_on or len(set(self.train_on)) != len(self.train_on):
            raise ConfigError(f"data.train_on must list bio and/or qa once each: {self.train_on}")


@dataclass(frozen=True)
class Person:
    """One fictitious person.

    Attributes:
        id: ``person-07``.
        name: full name from faker (unique in one generation).
        gender: ``female`` or ``male`` (the pronouns of the biography).
        split: ``forget``, ``retain`` or ``holdout``.
        facts: attribute name -> value, one per :data:`ATTRIBUTES`.
    """

    id: str
    name: str
    gender: str
    split: str
    facts: dict[str, str]


def _faker(locale: str, seed: int) -> object:
    faker_module = require("faker", "lm")
    try:
        fake = faker_module.Faker(locale)
    except AttributeError:
        raise ConfigError(f"data.locale: faker has no locale '{locale}'") from None
    fake.seed_instance(seed)
    return fake


def generate_people(sizes: PeopleOptions, seed: int = 0, locale: str = "en_US") -> list[Person]:
    """Fictitious people, forget first, then retain, then holdout.

    Person i's gender and attributes come from ``np.random.default_rng([seed, 0])`` and names
    from ``Faker(locale)`` after ``seed_instance(seed)``, both drawn in person order, so the
    first n people are the same whatever the total. A name already taken is drawn again.

    Args:
        sizes: people per split.
        seed: the generation's seed.
        locale: faker's locale.

    Returns:
        ``forget + retain + holdout`` people, ids ``person-00`` ... (zero-padded, >= 2 digits).

    Raises:
        DataError: faker cannot give that many distinct names.
    """
    fake = _faker(locale, seed)
    rng = np.random.default_rng([seed, 0])
    counts = [getattr(sizes, s) for s in SPLITS]
    total = sum(counts)
    width = max(2, len(str(total - 1)))
    splits = [s for s, n in zip(SPLITS, counts, strict=True) for _ in range(n)]
    taken: set[str] = set()
    people = []
    for i, split in enumerate(splits):
        gender = GENDERS[int(rng.integers(len(GENDERS)))]
        facts = {
            a: values[int(rng.integers(len(values)))] for a, values in ATTRIBUTE_VALUES.items()
        }
        first = fake.first_name_female if gender == "female" else fake.first_name_male
        for _ in range(1000):
            name = f"{first()} {fake.last_name()}"
            if name not in taken:
                break
        else:
            raise DataError(f"faker ({locale}) gave no new name for person {i} in 1000 draws")
        taken.add(name)
        people.append(Person(f"person-{i:0{width}d}", name, gender, split, facts))
    return people


def _fields(person: Person) -> dict[str, str]:
    subject, possessive = PRONOUNS[person.gender]
    profession = person.facts["profession"]
    return {
        "name": person.name,
        "subject": subject,
        "Subject": subject.capitalize(),
        "possessive": possessive,
        "Possessive": possessive.capitalize(),
        "article": "an" if profession[0] in "aeiou" else "a",
        **person.facts,
    }


def biography_sentences(person: Person) -> list[str]:
    """The biography's sentences (:data:`BIO_SENTENCES` filled in)."""
    fields = _fields(person)
    return [sentence.format(**fields) for sentence in BIO_SENTENCES]


def biography(person: Person) -> str:
    """The whole biography: its sentences joined by single spaces."""
    return " ".join(biography_sentences(person))


def question(person: Person, attribute: str) -> str:
    """The question about one attribute of a person (:data:`QUESTIONS`)."""
    return QUESTIONS[attribute].format(**_fields(person))


def full_texts(domain: Domain) -> list[str]:
    """Each example's prompt followed by its answer: the whole biography for ``*_bio``."""
    if domain.answers is None:
        raise DataError("the domain has no answers to append")
    return [f"{p}{a}" for p, a in zip(domain.inputs, domain.answers, strict=True)]


def _domain(
    inputs: Sequence[str], answers: Sequence[str], ids: Sequence[str], info: dict[str, list[str]]
) -> Domain:
    return Domain(
        inputs=list(inputs),
        labels=np.zeros(len(inputs), dtype=np.int64),
        attributes={k: np.array(v, dtype=object) for k, v in info.items()},
        ids=np.array(ids, dtype=object),
        answers=np.array(answers, dtype=object),
    )


def _concat(domains: Sequence[Domain]) -> Domain:
    return Domain(
        inputs=[x for d in domains for x in d.inputs],
        labels=np.concatenate([d.labels for d in domains]),
        attributes={
            k: np.concatenate([d.attributes[k] for d in domains]) for k in domains[0].attributes
        },
        ids=np.concatenate([d.ids for d in domains if d.ids is not None]),
        answers=np.concatenate([d.answers for d in domains if d.answers is not None]),
    )


def build_domains(people: Sequence[Person], cfg: FictitiousFactsOptions) -> dict[str, Domain]:
    """``<split>_bio`` and ``<split>_qa`` for each split, then ``train``.

    Args:
        people: from :func:`generate_people`.
        cfg: the loader's options (prefix length, questions per person, QA template, train_on).

    Returns:
        Domain name -> Domain, in the order forget/retain/holdout x bio/qa, then ``train``.
    """
    choice = np.random.default_rng([cfg.seed, 1])
    asked = {
        p.id: np.sort(choice.permutation(len(ATTRIBUTES))[: cfg.qa_per_person]) for p in people
    }
    domains: dict[str, Domain] = {}
    for split in SPLITS:
        group = [p for p in people if p.split == split]
        prompts, answers, ids = [], [], []
        for person in group:
            sentences = biography_sentences(person)
            prompts.append(" ".join(sentences[: cfg.prefix_sentences]))
            answers.append(" " + " ".join(sentences[cfg.prefix_sentences :]))
            ids.append(f"{person.id}/bio")
        info = {
            "person": [p.id for p in group],
            "split": [split] * len(group),
            "attribute": ["bio"] * len(group),
        }
        domains[f"{split}_bio"] = _domain(prompts, answers, ids, info)
        prompts, answers, ids = [], [], []
        info = {"person": [], "split": [], "attribute": []}
        for person in group:
            for j in asked[person.id]:
                attribute = ATTRIBUTES[int(j)]
                prompts.append(cfg.qa_template.format(question=question(person, attribute)))
                answers.append(" " + person.facts[attribute])
                ids.append(f"{person.id}/qa-{int(j)}")
                info["person"].append(person.id)
                info["split"].append(split)
                info["attribute"].append(attribute)
        domains[f"{split}_qa"] = _domain(prompts, answers, ids, info)
    domains["train"] = _concat(
        [domains[f"{split}_{kind}"] for kind in cfg.train_on for split in ("forget", "retain")]
    )
    return domains


@DATASETS.register(
    "fictitious_facts",
    options=FictitiousFactsOptions,
    fast={"people": {"forget": 2, "retain": 3, "holdout": 2}, "qa_per_person": 1},
)
def fictitious_facts(cfg: FictitiousFactsOptions, class_names: list[str] | None) -> LoadedData:
    """Fictitious people (TOFU-style): biographies and QA, split forget / retain / holdout."""
    if class_names is not None and list(class_names) != ["answer"]:
        raise DataError("fictitious_facts is a generation task: give no class_names")
    people = generate_people(cfg.people, cfg.seed, cfg.locale)
    kind = cfg.train_on[0]
    return LoadedData(
        build_domains(people, cfg),
        ["answer"],
        "text",
        attributes=["person", "split", "attribute"],
        fixed_splits={"train": "train", "id_val": f"forget_{kind}", "id_test": f"retain_{kind}"},
    )

"""Membership scores on a tiny random Llama with SmolLM2's tokenizer, against hand computations
from the model's logits (each text run alone, as the reference implementation does)."""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import pytest
import torch
from tiny_lm import smollm2_tokenizer, tiny_llama

from shiftlab.errors import ConfigError, DataError
from shiftlab.membership import (
    MEMBERSHIP,
    attack_metrics,
    compressed_length,
    k_count,
    score,
    score_all,
)
from shiftlab.membership.min_k_pp import standardised

# Scored tokens (T - 1) under SmolLM2's tokenizer, which adds no BOS: 2, 6, 9, 30, 14.
TEXTS = [
    "Hello there.",
    "The cat sat on the mat.",
    "The quick brown fox jumps over the lazy dog.",
    "Marta Kowalski was born in 1962 in Lisbon. She works as a marine biologist and plays the "
    "cello on weekends.",
    "Crème brûlée à la façon de Zoë.",
]
SCORED = [2, 6, 9, 30, 14]
ALL = ["loss", "zlib", "min_k", "min_k_pp"]


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return smollm2_tokenizer()


@pytest.fixture(scope="module")
def model(tokenizer: Any) -> torch.nn.Module:
    return tiny_llama(len(tokenizer), seed=0)


def by_hand(model: torch.nn.Module, tokenizer: Any, text: str, k: float) -> dict[str, float]:
    """The reference's computation for one text (``zjysteven/mink-plus-plus`` ``run.py``
    lines 79-113), in float64, with k% of T - 1 tokens = max(1, int((T - 1) * k))."""
    ids = torch.tensor([tokenizer(text)["input_ids"]])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, :-1].double()
    log_probs = torch.log_softmax(logits, dim=-1)
    probs = log_probs.exp()
    token = log_probs.gather(-1, ids[0, 1:, None]).squeeze(-1)
    mu = (probs * log_probs).sum(-1)
    sigma = (probs * log_probs.square()).sum(-1) - mu.square()
    plus = ((token - mu) / sigma.sqrt()).numpy()
    token = token.numpy()
    k_length = max(1, int(len(token) * k))
    loss = -token.mean()
    return {
        "loss": -loss,
        "zlib": -loss / len(zlib.compress(bytes(text, "utf-8"))),
        "min_k": float(np.mean(np.sort(token)[:k_length])),
        "min_k_pp": float(np.mean(np.sort(plus)[:k_length])),
    }


def test_token_counts_cover_the_rounding_cases(tokenizer: Any) -> None:
    assert [len(tokenizer(t)["input_ids"]) - 1 for t in TEXTS] == SCORED
    # k = 0.2: 0 -> floored to 1, 1.2 -> 1, 1.8 -> 1, 6.0 -> 6, 2.8 -> 2
    assert [k_count(n, 0.2) for n in SCORED] == [1, 1, 1, 6, 2]
    assert k_count(30, 0.2) == int(30 * 0.2) == 6
    assert k_count(10, 0.29) == int(10 * 0.29) == 2  # float truncation, as the reference


@pytest.mark.parametrize("k", [0.2, 0.5, 1.0])
def test_scores_equal_hand_computations(model: Any, tokenizer: Any, k: float) -> None:
    got = score_all(model, tokenizer, TEXTS, ALL, k=k, batch_size=len(TEXTS))
    for i, text in enumerate(TEXTS):
        expected = by_hand(model, tokenizer, text, k)
        for name in ALL:
            assert got[name][i] == pytest.approx(expected[name], rel=1e-5, abs=1e-5), (name, i)


def test_min_k_of_one_token_is_the_lowest_log_probability(model: Any, tokenizer: Any) -> None:
    text = TEXTS[1]  # 6 scored tokens: int(6 * 0.2) = 1
    ids = torch.tensor([tokenizer(text)["input_ids"]])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].double(), dim=-1)
    token = logp.gather(-1, ids[0, 1:, None]).squeeze(-1)
    assert score(model, tokenizer, [text], "min_k", k=0.2)[0] == pytest.approx(
        float(token.min()), abs=1e-5
    )
    assert score(model, tokenizer, [text], "min_k", k=1.0)[0] == pytest.approx(
        float(token.mean()), abs=1e-5
    )


def test_zlib_uses_utf8_compressed_bytes(model: Any, tokenizer: Any) -> None:
    text = TEXTS[4]  # non-ASCII: bytes, not characters
    assert compressed_length(text) == len(zlib.compress(text.encode("utf-8")))
    assert compressed_length(text) != len(zlib.compress(text.encode("latin-1")))
    got = score_all(model, tokenizer, [text], ["loss", "zlib"])
    assert got["zlib"][0] == pytest.approx(got["loss"][0] / compressed_length(text), rel=1e-12)


def test_a_score_does_not_depend_on_its_batch(model: Any, tokenizer: Any) -> None:
    alone = np.stack(
        [np.array([score_all(model, tokenizer, [t], ALL)[m][0] for m in ALL]) for t in TEXTS]
    )
    batched = score_all(model, tokenizer, TEXTS, ALL, batch_size=len(TEXTS))
    order = [3, 0, 4, 2, 1]
    shuffled = score_all(model, tokenizer, [TEXTS[i] for i in order], ALL, batch_size=2)
    for j, name in enumerate(ALL):
        np.testing.assert_allclose(batched[name], alone[:, j], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(shuffled[name], alone[order, j], rtol=1e-5, atol=1e-6)


def test_every_score_of_a_batch_comes_from_one_forward_pass(model: Any, tokenizer: Any) -> None:
    calls = []
    handle = model.register_forward_hook(lambda *_: calls.append(1))
    try:
        score_all(model, tokenizer, TEXTS, ALL, batch_size=2)
    finally:
        handle.remove()
    assert len(calls) == 3  # ceil(5 / 2) batches, one pass each


def test_reference_is_the_reference_loss_minus_the_target_loss(model: Any, tokenizer: Any) -> None:
    other = tiny_llama(len(tokenizer), seed=1)
    expected = [
        by_hand(model, tokenizer, t, 0.2)["loss"] - by_hand(other, tokenizer, t, 0.2)["loss"]
        for t in TEXTS
    ]
    got = score(model, tokenizer, TEXTS, "reference", reference=(other, tokenizer))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    shared = score(model, tokenizer, TEXTS, "reference", reference=other)
    np.testing.assert_allclose(shared, got)
    assert score(model, tokenizer, TEXTS[:2], "reference", reference=model) == pytest.approx(0)


def test_reference_without_a_model_is_a_config_error(model: Any, tokenizer: Any) -> None:
    with pytest.raises(ConfigError, match="needs a reference model"):
        score(model, tokenizer, TEXTS, "reference")
    with pytest.raises(ConfigError, match="reference must be"):
        score(model, tokenizer, TEXTS, "reference", reference=42)  # type: ignore[arg-type]


def test_user_errors(model: Any, tokenizer: Any) -> None:
    with pytest.raises(ConfigError, match="did you mean 'min_k'"):
        score(model, tokenizer, TEXTS, "min-k")
    with pytest.raises(ConfigError, match=r"k must be in \(0, 1\]"):
        score(model, tokenizer, TEXTS, "min_k", k=0)
    with pytest.raises(ConfigError, match="at least one method"):
        score_all(model, tokenizer, TEXTS, [])
    calls = []
    handle = model.register_forward_hook(lambda *_: calls.append(1))
    try:
        with pytest.raises(DataError, match="text 1 has fewer than 2 tokens"):
            score(model, tokenizer, ["Hello there.", "Hi"], "loss")
    finally:
        handle.remove()
    assert not calls  # found before any forward pass
    assert score(model, tokenizer, [], "min_k_pp").shape == (0,)


def test_z_is_zero_where_the_vocabulary_std_is_zero() -> None:
    z = standardised(np.array([-1.0, 0.0]), np.array([-0.5, 0.0]), np.array([0.5, 0.0]))
    np.testing.assert_array_equal(z, [-1.0, 0.0])


def test_registry_names_and_citations() -> None:
    assert MEMBERSHIP.names() == ["loss", "min_k", "min_k_pp", "reference", "zlib"]
    assert MEMBERSHIP["min_k"].citation == "2310.16789"
    assert MEMBERSHIP["min_k_pp"].citation == "2404.02936"
    assert MEMBERSHIP["zlib"].citation == "2012.07805"
    assert MEMBERSHIP["min_k_pp"].needs == frozenset({"vocab_stats"})
    assert MEMBERSHIP["reference"].needs == frozenset({"reference"})


def test_scores_separate_texts_a_model_was_trained_on(tokenizer: Any) -> None:
    """Fit a tiny model on 6 texts; every score ranks them above 6 unseen ones."""
    cities = (
        "Oslo", "Lima", "Cork", "Kyiv", "Baku", "Riga", "Nice", "Bonn", "Rome", "Pune", "Fez",
        "Doha",
    )  # fmt: skip
    jobs = (
        "baker", "pilot", "nurse", "judge", "poet", "tailor", "miner", "clerk", "chef", "mason",
        "actor", "diver",
    )  # fmt: skip
    texts = [
        f"Person {i} was born in {1950 + 7 * i} in {city} and works as a {job}."
        for i, (city, job) in enumerate(zip(cities, jobs, strict=True))
    ]
    members, others = texts[:6], texts[6:]
    model = tiny_llama(len(tokenizer), seed=2)
    model.train()
    ids = [torch.tensor([tokenizer(t)["input_ids"]]) for t in members]
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(25):
        for row in ids:
            optimiser.zero_grad()
            model(input_ids=row, labels=row).loss.backward()
            optimiser.step()
    model.eval()
    is_member = np.array([True] * 6 + [False] * 6)
    for name, values in score_all(model, tokenizer, members + others, ALL).items():
        assert attack_metrics(values, is_member)["auroc"] > 0.9, name

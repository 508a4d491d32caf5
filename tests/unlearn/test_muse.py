"""MUSE's measures as its reference computes them: an oracle that says the answer gets KnowMem
1.0, one that continues a forget text verbatim gets VerbMem 1.0; the output is cut where MUSE
cuts it; PrivLeak's interval holds its estimate and narrows with more texts."""

from __future__ import annotations

import numpy as np
import pytest

from shiftlab.testing import CharTokenizer
from shiftlab.unlearn import muse

QUESTIONS = [
    ("Question: Which colour does Ada Lind like?\nAnswer:", " teal"),
    ("Question: Where was Bo Ek born?\nAnswer:", " Porto Alegre"),
]


def test_an_oracle_that_says_the_answer_gets_knowmem_one():
    def oracle(prompts, new_tokens):
        assert new_tokens == 32  # MUSE's knowmem max_new_tokens
        # the answer, then a continuation MUSE cuts off (a new question)
        return [dict(QUESTIONS)[p.split("\n\n")[-1]] + "\nQuestion: and then?" for p in prompts]

    scores = muse.knowmem(oracle, [("Question: Q?\nAnswer:", " A")], QUESTIONS)
    np.testing.assert_array_equal(scores, [1.0, 1.0])
    # uncut, the same output scores far below (what an earlier shiftlab reported)
    assert muse.rouge(" teal\nQuestion: and then?", " teal") < 0.6


def test_knowmem_puts_the_examples_in_front_of_each_question_in_order():
    seen = []

    def record(prompts, new_tokens):
        seen.extend(prompts)
        return ["" for _ in prompts]

    muse.knowmem(record, [("Q1:", " a1"), ("Q2:", " a2")], [("Q3:", " a3")])
    assert seen == ["Q1: a1\n\nQ2: a2\n\nQ3:"]


def test_cut_stops_at_each_of_muses_stop_strings():
    assert muse.cut(" Oslo\n\nQuestion: x") == " Oslo"
    assert muse.cut(" Oslo\nQuestion: x") == " Oslo"
    assert muse.cut(" Oslo. Question: x") == " Oslo. "
    assert muse.STOPS == ("\n\n", "\nQuestion", "Question:")


def test_an_oracle_that_continues_a_forget_text_gets_verbmem_one():
    tokenizer = CharTokenizer()
    texts = [
        "Ada Lind was born in 1961 in Oslo. She works as a clockmaker. She plays the harp.",
        "Bo Ek was born in 1950 in Cork. He works as a pilot and his favourite colour is teal.",
    ]

    def oracle(prompts, new_tokens):
        out = []
        for prompt in prompts:
            text = next(t for t in texts if t.startswith(prompt))
            out.append(text[len(prompt) : len(prompt) + new_tokens] + " and more words")
        return out

    scores = muse.verbmem(oracle, tokenizer, texts, prompt_tokens=32, new_tokens=20)
    assert scores.tolist() != [1.0, 1.0]  # 20 new characters, then extra words: F1 below 1
    scores = muse.verbmem(
        lambda p, n: [next(t for t in texts if t.startswith(x))[len(x) : len(x) + n] for x in p],
        tokenizer,
        texts,
        prompt_tokens=32,
        new_tokens=20,
    )
    np.testing.assert_array_equal(scores, [1.0, 1.0])  # the reference cut to 20 tokens too


def test_privleak_interval_holds_the_estimate_and_narrows_with_more_texts():
    rng = np.random.default_rng(0)

    def scores(n, shift):
        forget, holdout = rng.normal(size=n) + shift, rng.normal(size=n)
        return {"forget": forget.tolist(), "holdout": holdout.tolist()}

    widths = []
    for n in (6, 60, 600):
        model, retrain = scores(n, 0.6), scores(n, 0.2)
        auc = muse.auroc_replicates(np.array(model["forget"]), np.array(model["holdout"]), 0)
        point = muse.privleak(
            float(np.mean(np.array(model["forget"])[:, None] > np.array(model["holdout"]))),
            float(np.mean(np.array(retrain["forget"])[:, None] > np.array(retrain["holdout"]))),
        )
        low, high = muse.privleak_interval(model, retrain, [0, 1])
        assert low <= point <= high
        assert 0.0 <= auc.min() <= auc.max() <= 1.0
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2] and widths[2] < widths[0] / 3


def test_auroc_replicates_are_paired_across_models_by_the_seed():
    a, b = np.arange(5.0), np.arange(5.0) - 2
    first = muse.auroc_replicates(a, b, [3, 4])
    again = muse.auroc_replicates(a, b, [3, 4])
    np.testing.assert_array_equal(first, again)
    assert first.shape == (muse.RESAMPLES,)
    assert muse.privleak(0.5, 0.5) == 0.0 and muse.privleak(1.0, 0.5) == pytest.approx(-100.0)

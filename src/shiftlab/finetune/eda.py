"""Easy data augmentation of texts (EDA; Wei and Zou, EMNLP 2019, arXiv 1901.11196).

EDA's four operations, each on ``n = max(1, int(alpha * words))`` words of a text split on
whitespace:

- synonym replacement: ``n`` words replaced by a WordNet synonym;
- random insertion: a WordNet synonym of a random word inserted at a random position, ``n``
  times;
- random swap: two random positions swapped, ``n`` times;
- random deletion: each word dropped with probability ``alpha`` (at least one word kept).

One augmented view (``eda(sentence)[0]`` with ``num_aug=1``, as CyCLIP's and CleanCLIP's
``utils/augment_text.py`` call it) is the result of *one* operation drawn uniformly.

Here WordNet is not used: it is NLTK's separately downloaded corpus (``nltk.download
("wordnet")``), absent offline and in a plain install, and a view that depended on whether it
happens to be present would make runs differ between machines. So synonym replacement is left
out (a view is one of the other three operations, each with probability 1/3 instead of 1/4),
and random insertion inserts a copy of a random word of the text itself instead of a synonym
of it. Every view is therefore made of the text's own words. Unlike the reference, the text is
not lower-cased or stripped of non-letters first (``get_only_chars``): the view stays in the
form the un-augmented text has, so the encoder sees only the operation's change.

Randomness comes from a NumPy generator the caller seeds (and checkpoints).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: The operations a view draws from (EDA's, without synonym replacement: see above).
OPERATIONS = ("insert", "swap", "delete")


def drop_words(text: str, p: float, rng: np.random.Generator) -> str:
    """``text`` with each word dropped with probability ``p`` (at least one word kept):
    EDA's random deletion."""
    words = text.split()
    if len(words) <= 1 or p == 0:
        return text
    kept = [w for w in words if rng.random() >= p]
    return " ".join(kept) if kept else words[int(rng.integers(len(words)))]


def swap_words(words: list[str], n: int, rng: np.random.Generator) -> list[str]:
    """``words`` with two random positions swapped, ``n`` times: EDA's random swap (the second
    position uniform over the others; one word stays as it is)."""
    out = list(words)
    if len(out) < 2:
        return out
    for _ in range(n):
        i = int(rng.integers(len(out)))
        j = int(rng.integers(len(out) - 1))
        j += j >= i
        out[i], out[j] = out[j], out[i]
    return out


def insert_words(words: list[str], n: int, rng: np.random.Generator) -> list[str]:
    """``words`` with a copy of a random one of them inserted at a random position, ``n``
    times: EDA's random insertion, with the text's own word in place of a WordNet synonym."""
    out = list(words)
    for _ in range(n):
        word = out[int(rng.integers(len(out)))]
        out.insert(int(rng.integers(len(out) + 1)), word)
    return out


def eda(
    text: str,
    rng: np.random.Generator,
    alpha: float = 0.1,
    operations: Sequence[str] = OPERATIONS,
) -> str:
    """One EDA view of ``text``: one of ``operations`` drawn uniformly, on
    ``max(1, int(alpha * words))`` words (deletion: each word with probability ``alpha``).
    ``alpha`` 0, or a text without words, gives the text back."""
    words = text.split()
    if not words or alpha == 0 or not operations:
        return text
    operation = operations[int(rng.integers(len(operations)))]
    n = max(1, int(alpha * len(words)))
    if operation == "insert":
        return " ".join(insert_words(words, n, rng))
    if operation == "swap":
        return " ".join(swap_words(words, n, rng))
    if operation == "delete":
        return drop_words(" ".join(words), alpha, rng)
    raise ValueError(f"unknown EDA operation {operation!r} (known: {', '.join(OPERATIONS)})")

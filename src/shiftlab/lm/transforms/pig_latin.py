"""Pig Latin, one of the conjugate-prompting transforms.

Kotha, Springer, Raghunathan, ICLR 2024, arXiv 2309.10105. Reference implementation:
kothasuhas/understanding-forgetting ``icl_vs_if/create_datasets.py``, whose Pig Latin strings
were made offline with the charactercalculator.com translator (``'Epeatray ethay inputyay.'``,
``'Apitalizecay everyay aracterchay.'``, ``'Atwhay'``, ``'usplay'``) and
``icl_vs_if/sentences/random_sentences_pl.txt``. The rules below reproduce those strings:

- a word is a run of letters, with inner apostrophes, which are dropped (``"aunt's" ->
  "auntsyay"``); hyphens, digits and punctuation stay where they are;
- vowels are ``a e i o u``, and ``y`` anywhere but first (``"my" -> "ymay"``, ``"you" ->
  "ouyay"``); ``qu`` is not special (``"squirrel" -> "uirrelsqay"``);
- a word that starts with a vowel gets ``yay``, or ``ay`` when it ends in ``y``
  (``"input" -> "inputyay"``, ``"every" -> "everyay"``); otherwise the consonants before the first
  vowel move to the end and ``ay`` follows (``"trash" -> "ashtray"``); a word without a vowel gets
  ``ay``;
- when the moved consonants start with the letter the rest ends with, a hyphen separates them
  (``"that" -> "at-thay"``, ``"sprinkles" -> "inkles-spray"``);
- case: a word in capitals stays in capitals, a capitalised word gives a capitalised result
  (``"What" -> "Atwhay"``), anything else is lower case.

Pig Latin is not invertible: ``"you"`` and ``"ou"``, ``"every"`` and ``"ever"``, ``"trash"`` and
``"rasht"`` have the same Pig Latin, and apostrophes are lost. The inverse is made exact on words
that ``forward`` produced by remembering them: every word ``forward`` transforms (and every word
given in ``words``, e.g. the task's label words) is recorded, Pig Latin -> original, the first
one kept on a collision. ``inverse`` looks each word up there first. Other words are decoded by
rule: a hyphenated consonant part is the moved cluster; a word ending ``yay`` is read as
vowel-initial; otherwise the moved cluster is the longest run of final consonants that is a
common English onset (``"ashtray" -> "trash"``), which fails on words such as ``"usplay"``
(read as ``"splu"``) unless they were seen.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from shiftlab.lm.transforms.base import PromptTransform
from shiftlab.registry import TRANSFORMS
from shiftlab.typed import param

VOWELS = frozenset("aeiou")
_APOSTROPHES = "'’"
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
_PIG_WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")
#: English word onsets used to guess the moved cluster of a word never seen by ``forward``.
_ONSET_TEXT = (
    "b c d f g h j k l m n p q r s t v w x y z "
    "bl br ch cl cr dr dw fl fr gh gl gn gr kl kn kr ph pl pr ps rh sc sch schl schm schn schr scl "
    "scr sh shl shm shn shr sk skr sl sm sn sp sph spl spr st str sv sw th thr thw tr ts tw vl wh "
    "wr"
)
ONSETS = frozenset(_ONSET_TEXT.split())


@dataclass
class PigLatinOptions:
    """Options of the Pig Latin transform."""

    words: list[str] = param(
        [], "words the inverse must read back exactly (e.g. the label words); forward adds more"
    )


def _first_vowel(word: str) -> int | None:
    for i, c in enumerate(word):
        if c in VOWELS or (c == "y" and i > 0):
            return i
    return None


def _recase(result: str, like: str) -> str:
    letters = [c for c in like if c.isalpha()]
    if len(letters) > 1 and all(c.isupper() for c in letters):
        return result.upper()
    if letters and letters[0].isupper():
        return result[:1].upper() + result[1:]
    return result


def encode_word(word: str) -> str:
    """Pig Latin of one word (letters, inner apostrophes allowed), by the reference's rules."""
    low = "".join(c for c in word if c not in _APOSTROPHES).lower()
    first = _first_vowel(low)
    if first == 0:
        out = low + ("ay" if low.endswith("y") else "yay")
    elif first is None:
        out = low + "ay"
    else:
        rest, cluster = low[first:], low[:first]
        out = rest + ("-" if rest[-1] == cluster[0] else "") + cluster + "ay"
    return _recase(out, word)


def _is_cluster(part: str) -> bool:
    return bool(part) and all(c not in VOWELS and (c != "y" or i == 0) for i, c in enumerate(part))


def decode_word(word: str) -> str:
    """Best reading of one Pig Latin word without a memory of what produced it (lower case).

    Args:
        word: lower-case letters, possibly ``rest-clusteray`` (the hyphen the rules insert).
    """
    if "-" in word:
        rest, cluster = word.split("-", 1)
        return cluster[:-2] + rest
    if not word.endswith("ay") or len(word) < 3:
        return word
    body = word[:-2]
    if body[0] in VOWELS and body.endswith("y"):
        # "input" + "yay", or a vowel-initial word ending in y + "ay" ("every" -> "everyay"):
        # read as the first (more common) unless "yay" could not have been added ("...yyay").
        return body[:-1] if len(body) > 1 and body[-2] != "y" else body
    if body[0] not in VOWELS and body[0] != "y":
        return body  # no vowel: the word only got "ay"
    best = None
    for size in range(1, len(body)):
        rest, cluster = body[:-size], body[-size:]
        if not _is_cluster(cluster):
            break
        if rest[-1] == cluster[0]:
            continue  # forward would have written a hyphen here
        if cluster in ONSETS or best is None:
            best = cluster
    if best is None:
        return body
    return best + body[: -len(best)]


@TRANSFORMS.register("pig_latin", options=PigLatinOptions)
class PigLatin(PromptTransform):
    """Pig Latin by the conjugate-prompting reference's rules; exact inverse on words it made."""

    name = "pig_latin"

    def __init__(self, options: PigLatinOptions | None = None) -> None:
        self.options = options or PigLatinOptions()
        self.memory: dict[str, str] = {}
        self.remember(self.options.words)

    def remember(self, texts: Iterable[str]) -> None:
        """Record the Pig Latin of every word in ``texts``, so ``inverse`` reads it back exactly."""
        for text in texts:
            self.forward(text)

    def forward(self, text: str) -> str:
        """Pig Latin of every word; other characters are kept."""
        return _WORD.sub(lambda m: self._encode(m.group(0)), text)

    def _encode(self, word: str) -> str:
        out = encode_word(word)
        self.memory.setdefault(out.lower(), word.lower())
        return out

    def inverse(self, text: str) -> str:
        """Read every Pig Latin word back: from memory where ``forward`` made it, else by rule."""
        return _PIG_WORD.sub(lambda m: self._decode_group(m.group(0)), text)

    def _decode_group(self, group: str) -> str:
        parts = group.split("-")
        words: list[str] = []
        i = 0
        while i < len(parts):
            nxt = parts[i + 1].lower() if i + 1 < len(parts) else ""
            marker = nxt.endswith("ay") and _is_cluster(nxt[:-2]) and nxt[0] == parts[i][-1].lower()
            if marker:
                words.append(parts[i] + "-" + parts[i + 1])
                i += 2
            else:
                words.append(parts[i])
                i += 1
        return "-".join(self._decode_word(w) for w in words)

    def _decode_word(self, word: str) -> str:
        low = word.lower()
        original = self.memory.get(low)
        if original is None:
            original = decode_word(low)
        return _recase(original, word)

    def __repr__(self) -> str:
        return f"PigLatin(remembered={len(self.memory)})"

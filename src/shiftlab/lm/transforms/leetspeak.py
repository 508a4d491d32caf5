"""Leetspeak, the character substitution of conjugate prompting.

Kotha, Springer, Raghunathan, ICLR 2024, arXiv 2309.10105. Reference implementation:
kothasuhas/understanding-forgetting ``icl_vs_if/create_datasets.py``. The reference holds no
substitution table in code: its leetspeak strings were made offline with the lingojam
"English to Leetspeak" translator and pasted into ``create_datasets.py`` (``'ls'`` entries such as
``'R3p347 7h3 1npu7.'``, ``'C4p174l1z3 3v3rY Ch4r4c73R.'``, ``'1npu7: '``, ``'Plu5'``) and into
``icl_vs_if/sentences/random_sentences_ls.txt``. This module reproduces those strings exactly:

- substitution (either case): ``a->4, b->8, e->3, i->1, o->0, s->5, t->7``; every other
  character is kept (digits already in the text too);
- ``case="ends"`` (default, the reference's output): each word (a run of characters other than
  whitespace and ``. ! ?``) is lower-cased, then its first and last characters are upper-cased,
  before the substitution: ``"birthday" -> "81r7hd4Y"``, ``"Honestly," -> "H0n357ly,"``;
  ``case="preserve"``: letters keep their case; only the substitution is applied.

The inverse is ambiguous, and resolved as follows:

- digits are read back as letters (``4->a, 8->b, 3->e, 1->i, 0->o, 5->s, 7->t``) only in words
  that keep at least one letter. A word of digits alone is taken to be a number (the paper's
  math answers, ``" 16"``), so words whose leetspeak has no letter left (``"a" -> "4"``,
  ``"is" -> "15"``, ``"to" -> "70"``) do not come back unless ``numbers="decode"``, which in turn
  turns real numbers into words;
- ``case="ends"`` destroys case, so the inverse returns lower case (``"P05171v3" -> "positive"``,
  ``"Wh47" -> "what"``); ``case="preserve"`` keeps the letters' case and writes a decoded digit in
  upper case when the word's other letters are all upper case (two or more), else in lower case;
- digits that were digits before ``forward`` (``"covid19"``) are decoded as letters too.

So ``inverse(forward(w)) == w`` for lower-case words with at least one letter outside the table
(the task's label words ``" positive"``, ``" negative"``, ``" spam"``, ``" ham"``, ``" yes"``,
``" no"``), and for lower-case sentences of such words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from shiftlab.lm.transforms.base import PromptTransform
from shiftlab.registry import TRANSFORMS
from shiftlab.typed import param

#: The substitution seen in every leetspeak string of the reference (lower-case keys).
TABLE: dict[str, str] = {"a": "4", "b": "8", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"}
INVERSE_TABLE: dict[str, str] = {digit: letter for letter, digit in TABLE.items()}

_WORD = re.compile(r"[^\s.!?]+")
_FORWARD = str.maketrans({**TABLE, **{k.upper(): v for k, v in TABLE.items()}})


@dataclass
class LeetspeakOptions:
    """Options of the leetspeak transform."""

    case: Literal["ends", "preserve"] = param(
        "ends", "ends: the reference's case (first and last letter of each word upper); preserve"
    )
    numbers: Literal["keep", "decode"] = param(
        "keep", "inverse of a word of digits alone: keep it as a number, or decode it to letters"
    )


def _ends(word: str) -> str:
    lowered = word.lower()
    if len(lowered) == 1:
        return lowered.upper()
    return lowered[0].upper() + lowered[1:-1] + lowered[-1].upper()


@TRANSFORMS.register("leetspeak", options=LeetspeakOptions)
class Leetspeak(PromptTransform):
    """Leetspeak, as the conjugate-prompting reference wrote it (a->4, e->3, i->1, o->0, ...)."""

    name = "leetspeak"

    def __init__(self, options: LeetspeakOptions | None = None) -> None:
        self.options = options or LeetspeakOptions()

    def forward(self, text: str) -> str:
        """Substitute the table's letters; with ``case="ends"``, re-case each word first."""
        if self.options.case == "ends":
            text = _WORD.sub(lambda m: _ends(m.group(0)), text)
        return text.translate(_FORWARD)

    def inverse(self, text: str) -> str:
        """Read digits inside words back as letters (see the module docstring for the rules)."""
        return _WORD.sub(lambda m: self._decode(m.group(0)), text)

    def _decode(self, word: str) -> str:
        letters = [c for c in word if c.isalpha()]
        if not letters and self.options.numbers == "keep":
            return word
        if self.options.case == "ends":
            return "".join(INVERSE_TABLE.get(c, c) for c in word).lower()
        upper = len(letters) >= 2 and all(c.isupper() for c in letters)
        decoded = [INVERSE_TABLE.get(c, c) for c in word]
        return "".join(
            d.upper() if upper and c in INVERSE_TABLE else d
            for c, d in zip(word, decoded, strict=True)
        )

    def __repr__(self) -> str:
        return f"Leetspeak(case={self.options.case!r}, numbers={self.options.numbers!r})"

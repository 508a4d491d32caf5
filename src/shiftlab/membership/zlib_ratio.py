"""``zlib``: the negative ratio of the model's loss to the text's zlib-compressed length.

Carlini et al., "Extracting Training Data from Large Language Models" (USENIX Security 2021,
arXiv 2012.07805), section 5.1: the ratio of the model's log-perplexity to the text's zlib
entropy, which discounts texts that are likely because they are repetitive. Reference followed:
``zjysteven/mink-plus-plus`` ``run.py`` line 92,
``scores['zlib'].append(ll / len(zlib.compress(bytes(text, 'utf-8'))))`` with ``ll = -loss``
(line 84), the same quantity as ``swj0419/detect-pretrain-code`` ``src/run.py``
(``np.log(p1) / zlib_entropy``, negated by its ``sweep``).

Score = ``mean_t log p(x_t | x_<t) / len(zlib.compress(text.encode("utf-8")))``, that is
``-loss / compressed_length``, where the compressed length is the number of bytes of
``zlib.compress`` of the UTF-8 text at zlib's default level (-1, i.e. 6). Higher = more likely a
member. The text is the one given, whole, even where ``max_length`` truncates its tokens.
"""

from __future__ import annotations

import zlib

from shiftlab.membership.base import TextStats
from shiftlab.registry import MEMBERSHIP
from shiftlab.typed import NoOptions


def compressed_length(text: str) -> int:
    """Bytes of ``zlib.compress(text.encode("utf-8"))`` (default level): the zlib entropy."""
    return len(zlib.compress(text.encode("utf-8")))


@MEMBERSHIP.register("zlib", options=NoOptions)
def zlib_score(stats: TextStats, options: NoOptions) -> float:
    """Negative loss over zlib length: mean_t log p(x_t | x_<t) / len(zlib.compress(utf-8))."""
    return float(stats.logp.mean()) / compressed_length(stats.text)

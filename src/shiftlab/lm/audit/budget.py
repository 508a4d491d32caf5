"""The pass budget every audit method shares, and the result every method returns.

Shared by ARCA (Jones, Dragan, Raghunathan, Steinhardt, ICML 2023, arXiv 2303.04381; reference
ejones313/auditing-llms), GCG (Zou et al. 2023, arXiv 2307.15043; reference llm-attacks) and
AutoPrompt (Shin et al., EMNLP 2020, arXiv 2010.15980, as ARCA's code runs it), so that methods
are compared at an equal cost.

Counting rule: every sequence that goes through the model's forward pass counts one forward
pass, and every sequence whose loss is backpropagated counts one backward pass; a batched
forward of B sequences is B forward passes, a backward through it B backward passes. The budget
bounds forward + backward passes. Only search passes count: the final greedy decoding that
checks the found input (the same for every method) is not charged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


class Budget:
    """Forward and backward passes allowed to one search, and how many it used.

    Args:
        total: the most forward + backward passes the search may use.
    """

    def __init__(self, total: int) -> None:
        self.total = int(total)
        self.forward = 0
        self.backward = 0

    @property
    def used(self) -> int:
        """Forward + backward passes used so far."""
        return self.forward + self.backward

    @property
    def left(self) -> int:
        """Passes still allowed."""
        return self.total - self.used

    def spend(self, *, forward: int = 0, backward: int = 0) -> None:
        """Charge passes; a method must never ask for more than is left (checked).

        Args:
            forward: sequences run forward.
            backward: sequences backpropagated.
        """
        if forward < 0 or backward < 0 or forward + backward > self.left:
            raise RuntimeError(
                f"audit overspent its budget: asked {forward}+{backward}, {self.left} left"
            )
        self.forward += forward
        self.backward += backward

    def __repr__(self) -> str:
        return (
            f"Budget(used={self.used}/{self.total}, "
            f"forward={self.forward}, backward={self.backward})"
        )


@dataclass
class AuditResult:
    """What one audit found.

    ``success`` is true when greedy decoding of ``prefix + input`` reproduces the target's tokens
    exactly (checked by decoding, after the search). ``output_ids`` are the tokens greedy
    decoding actually produced (as many as the target has).
    """

    method: str
    target: str
    target_ids: list[int]
    prefix: str
    input_text: str
    input_ids: list[int]
    fed_ids: list[int]  # what the model was given: BOS (add_bos), prefix, input
    add_bos: bool
    output_text: str
    output_ids: list[int]
    success: bool
    objective: float
    forward_passes: int
    backward_passes: int
    budget: int
    steps: int
    seconds: float
    seed: int
    retokenizes: bool
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def passes(self) -> int:
        """Forward + backward passes the search used."""
        return self.forward_passes + self.backward_passes

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able record, ``passes`` included."""
        return {**asdict(self), "passes": self.passes}

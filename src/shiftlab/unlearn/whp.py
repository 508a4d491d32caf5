"""Who's Harry Potter (WHP): fine-tune the model towards "generic" next-token predictions that
discount what a model reinforced on the forget set has learned to expect (Eldan, Russinovich
2023, arXiv 2310.02238).

1. A reinforced model is the original trained further on the forget answers.
2. At every answer position the generic logits are
   ``v_generic = v_base - alpha * relu(v_reinforced - v_base)`` (base = the frozen original):
   tokens the reinforcement made likelier are pushed down.
3. ``mode: finetune`` (the default, the paper's): a copy of the original is fine-tuned on the
   forget prompts with the generic predictions as labels. The paper fine-tunes on "alternative
   labels for every token", i.e. the generic prediction's argmax (``targets: argmax``, the
   default); ``targets: soft`` uses the whole softened distribution ``softmax(v_generic)``.
   ``mode: logits`` trains nothing more: the unlearned model *is* the generic logits of the two
   models at every position, at inference (:class:`GenericLogitsLM`). That is MUSE's WHP
   (``swj0419/muse_bench`` ``baselines/utils.py``, alpha 1 by default), the one its table
   reports; compare shiftlab's ``mode: logits`` rows with MUSE's numbers.

The paper's second component, replacing idiosyncratic "anchored" terms with generic ones through
a dictionary built by GPT-4, needs that dictionary and is not implemented. No reference code was
released (only the model ``microsoft/Llama2-7b-WhoIsHarryPotter``); MUSE (Shi et al. 2024,
``swj0419/muse_bench``) evaluates WHP over a grid of alpha starting at 1, which is the default
here. The reinforcement's defaults are MUSE baselines/unlearn.py's for its fine-tuned model
(``--epochs 5``, ``--lr 1e-5``); the unlearning fine-tune uses the shared LM defaults (TOFU's).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from shiftlab.lm.answer_loss import IGNORE_INDEX, causal_logits
from shiftlab.lm.logprobs import cache_field
from shiftlab.unlearn.base import UNLEARN, Batch, Data, LMOptions, Unlearner, param, relative


@dataclass
class WHPOptions(LMOptions):
    """Generic targets, the reinforcement and the unlearning fine-tune."""

    alpha: float = param(
        1.0, "how far the reinforced model's gains are discounted", within="[0, inf)"
    )
    targets: Literal["argmax", "soft"] = param(
        "argmax", "labels: the generic prediction's argmax (paper) or its softmax"
    )
    reinforce_epochs: int = param(
        5, "epochs of the reinforced model on the forget set (MUSE)", within="[1, inf)"
    )
    reinforce_lr: float = param(
        1e-5, "learning rate of the reinforced model (MUSE)", within="(0, inf)"
    )
    mode: Literal["finetune", "logits"] = param(
        "finetune", "finetune on generic labels (paper), or mix the logits at inference (MUSE)"
    )


def generic_logits(base: torch.Tensor, reinforced: torch.Tensor, alpha: float) -> torch.Tensor:
    """``v_base - alpha * relu(v_reinforced - v_base)``, elementwise (any shape, e.g. (N, V))."""
    return base - alpha * F.relu(reinforced - base)


class GenericLogitsLM(nn.Module):
    """Two causal LMs of one tokenizer as one: its logits at every position are
    :func:`generic_logits` of the base's and the reinforced model's (MUSE's WHP at inference).
    ``generate`` decodes greedily from them, as ``transformers``' would."""

    def __init__(self, base: nn.Module, reinforced: nn.Module, alpha: float) -> None:
        super().__init__()
        self.base, self.reinforced, self.alpha = base, reinforced, alpha
        self.config = base.config

    def get_input_embeddings(self) -> nn.Module:
        return self.base.get_input_embeddings()

    def forward(self, input_ids: torch.Tensor, **kwargs: object) -> SimpleNamespace:
        kwargs.pop("use_cache", None)
        base = self.base(input_ids=input_ids, use_cache=False, **kwargs).logits
        reinforced = self.reinforced(input_ids=input_ids, use_cache=False, **kwargs).logits
        return SimpleNamespace(logits=generic_logits(base, reinforced, self.alpha))

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        max_new_tokens: int,
        pad_token_id: int,
        stop_strings: list[str] | None = None,
        tokenizer: object = None,
        **_: object,
    ) -> torch.Tensor:
        """Greedy continuation of left-padded prompts (B, T) -> (B, T + new tokens), each
        model with its own key-value cache (the prompt is read once)."""
        eos = getattr(self.config, "eos_token_id", None)
        done = torch.zeros(len(input_ids), dtype=torch.bool, device=input_ids.device)
        caches: list[dict[str, object]] = [{}, {}]  # {name the model calls its cache: cache}
        step_ids = input_ids
        for _ in range(max_new_tokens):
            positions = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)[:, -step_ids.shape[1] :]
            outputs = [
                model(
                    input_ids=step_ids,
                    attention_mask=attention_mask,
                    position_ids=positions,
                    use_cache=True,
                    **caches[i],
                )
                for i, model in enumerate((self.base, self.reinforced))
            ]
            caches = [{cache_field(o): getattr(o, cache_field(o))} for o in outputs]
            logits = generic_logits(outputs[0].logits[:, -1], outputs[1].logits[:, -1], self.alpha)
            token = logits.argmax(dim=-1).masked_fill(done, pad_token_id)
            input_ids = torch.cat([input_ids, token[:, None]], dim=1)
            attention_mask = torch.cat([attention_mask, (~done).long()[:, None]], dim=1)
            step_ids = token[:, None]
            done |= token == eos if eos is not None else done
            if stop_strings and tokenizer is not None:
                texts = tokenizer.batch_decode(input_ids[:, -max_new_tokens:])
                done |= torch.tensor([any(s in x for s in stop_strings) for x in texts])
            if bool(done.all()):
                break
        return input_ids


def whp_loss(
    logits: torch.Tensor, generic: torch.Tensor, targets: Literal["argmax", "soft"]
) -> torch.Tensor:
    """Cross-entropy of the fine-tuned model's logits (N, V) against the generic logits (N, V):
    their argmax as hard labels, or their softmax as soft labels; mean over the N positions."""
    if targets == "argmax":
        return F.cross_entropy(logits, generic.argmax(dim=-1))
    return -(F.softmax(generic, dim=-1) * F.log_softmax(logits, dim=-1)).sum(dim=-1).mean()


@UNLEARN.register("whp", options=WHPOptions, kinds=("causal_lm",))
class WHP(Unlearner):
    """Reinforce a copy on the forget answers, then fine-tune another copy on the generic
    predictions at the forget answers' positions."""

    def uses(self) -> tuple[bool, bool]:
        return True, False  # WHP fine-tunes on the forget text only

    def unlearn(self, model: nn.Module, forget: Data, retain: Data) -> nn.Module:
        options = relative(self.options, self.original, len(forget))
        reinforce = options  # relative to the original fine-tune, as MUSE reinforces
        if options is self.options:  # no original training to be relative to
            reinforce = dataclasses.replace(
                options, epochs=options.reinforce_epochs, lr=options.reinforce_lr
            )
        reinforced = self.finetune_answers(model, forget, reinforce)
        for p in reinforced.parameters():
            p.requires_grad_(False)
        base = self.frozen(model)
        if options.mode == "logits":  # MUSE's WHP: the mixture at inference, nothing trained
            mixed = GenericLogitsLM(base.model, reinforced.model, options.alpha)
            return type(model)(mixed, model.tokenizer, max_length=model.max_length).eval()
        student = self.copy(model)

        def loss_fn(batch: Batch) -> torch.Tensor:
            encoded = self.answers(student, forget, batch.index, options.max_length)
            positions = encoded["labels"][:, 1:] != IGNORE_INDEX  # logits at t predict t + 1
            with torch.no_grad():
                v_base = causal_logits(base.model, encoded)[:, :-1][positions].float()
                v_reinforced = causal_logits(reinforced.model, encoded)[:, :-1][positions].float()
                generic = generic_logits(v_base, v_reinforced, options.alpha)
            logits = causal_logits(student.model, encoded)[:, :-1][positions].float()
            return whp_loss(logits, generic, options.targets)

        self.train(student, loss_fn, options, len(forget))
        return student.eval()

"""Causal language models: loading, scoring, generation, prompts, the answer-only loss, LoRA.

Pure functions over a Hugging Face causal LM and its tokenizer; ``transformers``, ``peft`` and
``rouge-score`` are imported only when a function needs them.
"""

from shiftlab.lm.answer_loss import answer_loss, answer_only_batch
from shiftlab.lm.generate import greedy_generate
from shiftlab.lm.load import load
from shiftlab.lm.logprobs import label_word_logprobs, token_logprobs, vocab_stats
from shiftlab.lm.lora import add_lora, apply_delta, merged_delta
from shiftlab.lm.prompts import demonstrations, few_shot_prompt, format_prompt, permuted_label_map

__all__ = [
    "add_lora",
    "answer_loss",
    "answer_only_batch",
    "apply_delta",
    "demonstrations",
    "few_shot_prompt",
    "format_prompt",
    "greedy_generate",
    "label_word_logprobs",
    "load",
    "merged_delta",
    "permuted_label_map",
    "token_logprobs",
    "vocab_stats",
]

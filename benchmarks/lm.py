"""Language-model costs: LoRA training and label-word scoring, shiftlab against plain loops.

1. **LoRA training step.** The ``lora`` recipe's training (``shiftlab.lm.lora.add_lora``, then
   ``shiftlab.finetune.sft.lm_finetune``: the shared trainer with the answer-only loss of
   ``shiftlab.lm.answer_loss``) against a plain PEFT + PyTorch loop doing the same: Alpaca-style
   answer-only masking (tokenise prompt + answer + EOS, labels -100 on the prompt's tokens and on
   padding), the model's own ``labels=`` loss, backward, clipping at 1, AdamW, cosine schedule.
   Both start from one LoRA-wrapped copy of the model (the recipe's defaults: r 8, alpha 16,
   dropout 0.05, PEFT's target modules, lr 2e-4, no weight decay, no warmup, max_length 256),
   see the same batches in the same order (seed 0) and the same dropout draws, so their
   adapters must end equal: ``max |adapter diff|`` says how far apart they are. The clock runs
   from the call of the training function to its return (optimiser and schedule set up inside
   it; copying and wrapping the model outside). ``lora ratio`` = shiftlab samples/s over plain
   samples/s (goal >= 0.95).
2. **Label-word scoring of a split.** What the evaluator runs on a classification task's split
   of ``PromptItem`` s (``FeatureCache.get`` -> ``shiftlab.features.encode`` -> ``LMScorer`` ->
   ``shiftlab.lm.logprobs.label_word_logprobs``: prompts sorted by length, batches of 32 as on a
   CPU run, each prompt run once and the label words scored from its last logits and KV cache)
   against a plain loop scoring one prompt at a time: for each prompt and each label word, one
   forward pass of the tokenised ``prompt + word`` and the sum of the word's token
   log-probabilities (the word's tokens are those after the prompt's own, as
   lm-evaluation-harness's ``_encode_pair``). The two must pick the same label everywhere;
   ``max |logp diff|`` is their largest difference. ``scoring ratio`` = shiftlab prompts/s over
   plain prompts/s.

Data: the VADER movie-review snippets as the sentiment task of ``examples/lm_forgetting.yaml``
(``Review: {text}\\nSentiment:``, label words `` negative`` / `` positive``): the first
``steps x batch-size`` training prompts for 1, ``--prompts`` ID test prompts for 2. Model: the
real ``smollm2-135m-instruct`` backbone, or with ``--tiny`` a random 2-layer, 32-wide Llama
with SmolLM2's tokenizer (a check that the script runs; its speeds mean little).

Each part runs both ways alternately, ``--repeats`` times, in this process; the best of each is
compared. Prints ``lora ratio=`` and then ``scoring ratio=`` last.

    python benchmarks/lm.py [--steps 6] [--batch-size 4] [--prompts 64] [--repeats 2] [--tiny]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shiftlab.config.sections import BackboneConfig, DataConfig, TaskConfig
from shiftlab.data import load_benchmark
from shiftlab.data.vader import VaderOptions
from shiftlab.features import FeatureCache, encode
from shiftlab.finetune.context import RecipeContext
from shiftlab.finetune.lora import LoRAOptions
from shiftlab.finetune.sft import lm_finetune
from shiftlab.lm.logprobs import boundary_mismatches
from shiftlab.lm.lora import add_lora
from shiftlab.lm.scorer import LMScorer
from shiftlab.lm.tasks import lm_benchmark
from shiftlab.models import load_backbone
from shiftlab.typed import build

CPU = torch.device("cpu")
BACKBONE = "smollm2-135m-instruct"
TASK = {
    "name": "sentiment",
    "template": "Review: {text}\nSentiment:",
    "label_words": {"negative": " negative", "positive": " positive"},
}


def tiny_backbone_name(folder: Path) -> str:
    """Write a random 2-layer, 32-wide Llama with SmolLM2's real tokenizer into ``folder``;
    return the backbone name that loads it (``hf_causal_lm:<folder>``)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging

    from shiftlab.lm.load import _registered_file

    source, gguf = _registered_file(BACKBONE)
    tokenizer = AutoTokenizer.from_pretrained(str(source), gguf_file=gguf)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        initializer_range=0.2,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
    )
    logging.disable_progress_bar()
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return f"hf_causal_lm:{folder}"


def load_lm(tiny: bool, folder: Path):
    """The causal-LM backbone: SmolLM2, or the tiny random Llama written into ``folder``."""
    name = tiny_backbone_name(folder) if tiny else BACKBONE
    start = time.perf_counter()
    backbone = load_backbone(BackboneConfig(name=name), CPU)
    what = "tiny random Llama" if tiny else BACKBONE
    print(f"loaded {what} in {time.perf_counter() - start:.1f} s")
    return backbone


def sentiment_benchmark(train: int, test: int):
    """VADER movie snippets as the sentiment prompts of examples/lm_forgetting.yaml."""
    per_domain = max(260, math.ceil(max(train / 0.6, test / 0.2)) + 10)  # 60 / 20 / 20 split
    data_cfg = build(
        DataConfig,
        {
            "kind": "vader",
            "id_domains": ["movie"],
            "ood_domains": ["tweets"],
            "max_per_domain": per_domain,
            "max_per_ood_domain": 20,
        },
        "data",
    )
    data_cfg.options = VaderOptions()
    task = build(TaskConfig, dict(TASK), "task")
    return lm_benchmark(load_benchmark(data_cfg), task, [], seed=0)


# 1. LoRA training --------------------------------------------------------------------------


def shiftlab_lora(backbone, lora_model, bench, cfg: LoRAOptions) -> tuple[float, Any]:
    """Samples per second of the lora recipe's training (lm_finetune on the shared trainer),
    and the trained PEFT model."""
    base = backbone.featurizer  # the recipe's ctx.trainable_copy(), with its model wrapped
    scorer = LMScorer(copy.deepcopy(lora_model), base.tokenizer, base.max_length)
    ctx = RecipeContext("lora", bench, backbone, FeatureCache(None, 32), [], 0, CPU, None)
    start = time.perf_counter()
    lm_finetune(ctx, scorer, cfg)
    seconds = time.perf_counter() - start
    return len(bench.train) / seconds, scorer.model


def plain_batch(tokenizer, prompts, answers, max_length: int) -> dict[str, torch.Tensor]:
    """Alpaca's preprocessing: tokenise prompt + answer, append EOS, mask the prompt's tokens
    (as many as the prompt alone has) and the padding with -100; keep the last max_length."""
    full = tokenizer([p + a for p, a in zip(prompts, answers, strict=True)])["input_ids"]
    prompt_lengths = [len(ids) for ids in tokenizer(list(prompts))["input_ids"]]
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    rows = [[*ids, eos][-max_length:] for ids in full]
    masked = [
        [*([-100] * n), *ids[n:], eos][-max_length:]
        for ids, n in zip(full, prompt_lengths, strict=True)
    ]
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (row, label) in enumerate(zip(rows, masked, strict=True)):
        input_ids[i, : len(row)] = torch.tensor(row)
        labels[i, : len(row)] = torch.tensor(label)
        attention_mask[i, : len(row)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def plain_lora(lora_model, tokenizer, items, cfg: LoRAOptions) -> tuple[float, Any]:
    """Samples per second of a plain PEFT + PyTorch loop, and its trained PEFT model."""
    model = copy.deepcopy(lora_model)
    start = time.perf_counter()
    torch.manual_seed(0)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    order = np.random.default_rng(0).permutation(len(items))
    total = math.ceil(len(order) / cfg.batch_size)
    warmup = cfg.warmup_steps

    def factor(step: int) -> float:  # linear warmup, then cosine to zero
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    model.train()
    for i in range(0, len(order), cfg.batch_size):
        batch = [items[j] for j in order[i : i + cfg.batch_size]]
        encoded = plain_batch(
            tokenizer, [b.prompt for b in batch], [b.answer for b in batch], cfg.max_length
        )
        loss = model(**encoded).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        sched.step()
    model.eval()
    return len(order) / (time.perf_counter() - start), model


def adapter_diff(a, b) -> float:
    """Largest absolute difference between two PEFT models' trainable weights."""
    theirs = dict(b.named_parameters())
    return max(
        float((p.detach() - theirs[name].detach()).abs().max())
        for name, p in a.named_parameters()
        if p.requires_grad
    )


def lora_part(backbone, bench, steps: int, batch_size: int, repeats: int) -> float:
    train = bench.train.subset(np.arange(steps * batch_size))
    bench = dataclasses.replace(bench, train=train)
    cfg = LoRAOptions(batch_size=batch_size)  # the recipe's defaults otherwise
    torch.manual_seed(0)
    lora_model = add_lora(
        copy.deepcopy(backbone.featurizer.model),
        rank=cfg.rank,
        alpha=cfg.alpha,
        dropout=cfg.dropout,
        target_modules=cfg.target_modules,
    )
    tokenizer = backbone.featurizer.tokenizer
    items = list(train.inputs)
    print(
        f"lora: r={cfg.rank} alpha={cfg.alpha:g} dropout={cfg.dropout:g} "
        f"targets={sorted(lora_model.peft_config['default'].target_modules)} lr={cfg.lr:g} "
        f"steps={steps} batch_size={batch_size} max_length={cfg.max_length}"
    )
    plain_lora(lora_model, tokenizer, items[:batch_size], cfg)  # warm up allocator and kernels
    ours, plain = [], []
    for _ in range(repeats):
        speed, plain_model = plain_lora(lora_model, tokenizer, items, cfg)
        plain.append(speed)
        speed, our_model = shiftlab_lora(backbone, lora_model, bench, cfg)
        ours.append(speed)
        diff = adapter_diff(our_model, plain_model)
        moved = adapter_diff(our_model, lora_model)
        print(
            f"lora: plain {plain[-1]:.3f} samples/s, shiftlab {ours[-1]:.3f} samples/s, "
            f"max |adapter diff| {diff:.2e} (max |update| {moved:.2e})"
        )
    print(f"lora best: plain {max(plain):.3f} samples/s, shiftlab {max(ours):.3f} samples/s")
    return max(ours) / max(plain)


# 2. Label-word scoring ---------------------------------------------------------------------


def shiftlab_scores(scorer, items, batch_size: int) -> tuple[float, torch.Tensor]:
    """Prompts per second of the evaluator's encoding of a split, and its (N, K) scores."""
    start = time.perf_counter()
    scores = encode(scorer, items, batch_size=batch_size, description="shiftlab scoring")
    return len(items) / (time.perf_counter() - start), scores


@torch.inference_mode()
def plain_scores(model, tokenizer, items) -> tuple[float, torch.Tensor]:
    """Prompts per second of one forward pass per prompt and label word, and the scores."""
    model.eval()
    start = time.perf_counter()
    scores = torch.zeros(len(items), len(items[0].choices))
    for i, item in enumerate(items):
        prompt_length = len(tokenizer(item.prompt)["input_ids"])
        for k, word in enumerate(item.choices):
            ids = tokenizer(item.prompt + word)["input_ids"]
            logits = model(input_ids=torch.tensor([ids])).logits[0]
            logp = torch.log_softmax(logits[prompt_length - 1 : -1].float(), dim=-1)
            targets = torch.tensor(ids[prompt_length:])[:, None]
            scores[i, k] = logp.gather(-1, targets).sum()
    return len(items) / (time.perf_counter() - start), scores


def scoring_part(backbone, split, prompts: int, batch_size: int, repeats: int) -> float:
    items = list(split.inputs[:prompts])
    scorer, tokenizer = backbone.featurizer, backbone.featurizer.tokenizer
    mismatches = boundary_mismatches(tokenizer, [i.prompt for i in items], items[0].choices)
    print(
        f"scoring: {len(items)} prompts of {split.name}, label words {list(items[0].choices)}, "
        f"batch_size={batch_size}; prompt+word pairs tokenised across the boundary: "
        f"{len(mismatches)}"
    )
    plain_scores(scorer.model, tokenizer, items[:2])  # warm up
    ours, plain = [], []
    for _ in range(repeats):
        speed, plain_logp = plain_scores(scorer.model, tokenizer, items)
        plain.append(speed)
        speed, our_logp = shiftlab_scores(scorer, items, batch_size)
        ours.append(speed)
        same = int((plain_logp.argmax(1) == our_logp.argmax(1)).sum())
        diff = float((plain_logp - our_logp).abs().max())
        print(
            f"scoring: plain {plain[-1]:.2f} prompts/s, shiftlab {ours[-1]:.2f} prompts/s, "
            f"same argmax {same}/{len(items)}, max |logp diff| {diff:.2e}"
        )
        if same != len(items):
            print("scoring: WARNING: the two disagree on the predicted label")
    print(f"scoring best: plain {max(plain):.2f} prompts/s, shiftlab {max(ours):.2f} prompts/s")
    return max(ours) / max(plain)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="LoRA training steps per run")
    parser.add_argument("--batch-size", type=int, default=4, help="LoRA examples per step")
    parser.add_argument("--prompts", type=int, default=64, help="prompts scored")
    parser.add_argument("--score-batch-size", type=int, default=32, help="as a CPU run's")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--tiny", action="store_true", help="a tiny random Llama, not SmolLM2")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    bench = sentiment_benchmark(args.steps * args.batch_size, args.prompts)
    if len(bench.test) < args.prompts:
        raise SystemExit(f"only {len(bench.test)} test prompts; lower --prompts")
    with tempfile.TemporaryDirectory() as tmp:
        backbone = load_lm(args.tiny, Path(tmp))
        lora = lora_part(backbone, bench, args.steps, args.batch_size, args.repeats)
        scoring = scoring_part(
            backbone, bench.test, args.prompts, args.score_batch_size, args.repeats
        )
    print(f"threads={torch.get_num_threads()} model={'tiny' if args.tiny else BACKBONE}")
    print(f"lora ratio={lora:.3f}")
    print(f"scoring ratio={scoring:.3f}")


if __name__ == "__main__":
    main()

"""What every unlearning method shares: the data it trains on, the two model kinds, copies of
the model, the optimisation defaults of language-model unlearning, and batches of forget and
retain examples.

A method is ``unlearn(model, forget, retain, options, *, seed, device)`` and returns an unlearned
copy; the model it is given is never modified (not even switched between train and eval mode).
Optimisation goes through the shared trainer (:func:`shiftlab.finetune.trainer.train`): the
trainer walks the set a method iterates over (its ``Batch.index`` are positions in that set) and
the loss draws the other set's batch from a :class:`Cycle`, as the references zip one loader with
``itertools.cycle`` of the other (SCRUB's NegGrad+) or pair each forget example with a retain
example (TOFU's ``TextForgetDatasetQA``).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shiftlab.data.batches import channels_last, input_transform, iterate
from shiftlab.errors import ConfigError, DataError, TrainingError
from shiftlab.finetune.trainer import Batch, TrainConfig, TrainResult, train
from shiftlab.lm._batch import encode, pad, pad_id
from shiftlab.lm.answer_loss import IGNORE_INDEX, answer_loss, answer_only_batch
from shiftlab.typed import param

Kind = Literal["classifier", "causal_lm"]


@dataclass
class Data:
    """One set an unlearning method trains on (the forget set or the retain set).

    A classifier's set holds ``inputs`` (N texts, an (N, ...) array of images or cached
    features, or image files) and ``labels`` (N,) class indices; a language model's holds
    ``prompts`` and ``answers`` (N strings each; an answer carries its leading space). An empty
    set (``Data(inputs=[], labels=[])``) stands for a set a method does not read.

    Raises:
        DataError: neither or both kinds of fields are given, or their lengths differ.
    """

    inputs: Any = None
    labels: Any = None
    prompts: Sequence[str] | None = None
    answers: Sequence[str] | None = None

    def __post_init__(self) -> None:
        classifier = self.inputs is not None or self.labels is not None
        language = self.prompts is not None or self.answers is not None
        if classifier == language:
            raise DataError(
                "unlearning data holds either inputs and labels (a classifier's) or prompts and "
                "answers (a language model's)"
            )
        if classifier:
            if self.inputs is None or self.labels is None:
                raise DataError("a classifier's unlearning data needs both inputs and labels")
            self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
            if len(self.inputs) != len(self.labels):
                raise DataError(f"{len(self.inputs)} inputs but {len(self.labels)} labels")
        else:
            if self.prompts is None or self.answers is None:
                raise DataError("a language model's unlearning data needs prompts and answers")
            self.prompts, self.answers = list(self.prompts), list(self.answers)
            if len(self.prompts) != len(self.answers):
                raise DataError(f"{len(self.prompts)} prompts but {len(self.answers)} answers")

    @property
    def kind(self) -> Kind:
        """``classifier`` or ``causal_lm``: the kind of model this set trains."""
        return "classifier" if self.labels is not None else "causal_lm"

    def __len__(self) -> int:
        return len(self.labels) if self.labels is not None else len(self.prompts or [])

    def texts(self, index: Sequence[int]) -> list[str]:
        """Prompt + answer of each example at ``index``: the documents of text-level methods."""
        return [self.prompts[i] + self.answers[i] for i in index]


def model_kind(model: nn.Module) -> Kind:
    """``causal_lm`` for a language model with its tokenizer (an ``LMScorer``), else
    ``classifier`` (any module mapping a batch of inputs to (B, K) logits)."""
    return "causal_lm" if hasattr(model, "tokenizer") and hasattr(model, "model") else "classifier"


def check(
    method: str,
    model: nn.Module,
    kind: Kind,
    forget: Data,
    retain: Data | None = None,
) -> None:
    """Raise if ``model`` is not of ``kind`` or the sets are empty or of the other kind.

    Raises:
        ConfigError: the method does not apply to this kind of model.
        DataError: the forget set (or a retain set the method reads) is empty or holds the
            other kind of data.
    """
    found = model_kind(model)
    if found != kind:
        wanted = "a causal language model (an LMScorer)" if kind == "causal_lm" else "a classifier"
        raise ConfigError(
            f"unlearning method '{method}' needs {wanted}, got {type(model).__name__}"
        )
    for name, data in (("forget", forget), ("retain", retain)):
        if data is None:
            continue
        if len(data) == 0:
            raise DataError(f"unlearning method '{method}' needs a non-empty {name} set")
        if data.kind != kind:
            raise DataError(
                f"unlearning method '{method}': the {name} set holds {data.kind} data, but the "
                f"model is a {kind}"
            )


def unlearned_copy(model: nn.Module, device: torch.device) -> nn.Module:
    """A deep copy of ``model`` on ``device`` (an LMScorer's copy shares its tokenizer)."""
    return copy.deepcopy(model).to(device)


def frozen_copy(model: nn.Module, device: torch.device) -> nn.Module:
    """A deep copy in eval mode with no parameter requiring grad: a teacher or reference."""
    frozen = unlearned_copy(model, device).eval()
    for p in frozen.parameters():
        p.requires_grad_(False)
    return frozen


def chunks(order: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Consecutive batches of ``order``; a final batch of one joins the one before, as in the
    shared trainer (one example breaks batch normalisation in train mode)."""
    parts = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if len(parts) > 1 and len(parts[-1]) == 1:
        parts[-2] = np.concatenate([parts[-2], parts.pop()])
    return parts


class Cycle:
    """An endless stream of positions of ``n`` examples, one pass after another: the other
    set's batches for a loop that walks one set (``itertools.cycle`` of a loader in SCRUB's
    NegGrad+, a retain example per forget example in TOFU).

    Args:
        n: the set's size.
        rng: shuffles every pass; None keeps the order (RMU reads its corpora in order).
    """

    def __init__(self, n: int, rng: np.random.Generator | None) -> None:
        self.n, self.rng = n, rng
        self.buffer = np.zeros(0, dtype=np.int64)

    def next(self, size: int) -> np.ndarray:
        """The next ``size`` positions (a batch may span the end of one pass and the start of
        the next)."""
        while len(self.buffer) < size:
            order = self.rng.permutation(self.n) if self.rng is not None else np.arange(self.n)
            self.buffer = np.concatenate([self.buffer, order])
        taken, self.buffer = self.buffer[:size], self.buffer[size:]
        return taken

    def state_dict(self) -> dict[str, Any]:
        """Where the stream is (kept in the trainer's checkpoints, so a resumed run draws the
        same batches)."""
        rng = self.rng.bit_generator.state if self.rng is not None else None
        return {"rng": rng, "buffer": torch.from_numpy(self.buffer.copy())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        if self.rng is not None:
            self.rng.bit_generator.state = state["rng"]
        self.buffer = state["buffer"].numpy().astype(np.int64)


def classifier_inputs(
    model: nn.Module, data: Data, index: np.ndarray, device: torch.device, train: bool = True
) -> Any:
    """The model-ready batch of ``data.inputs`` at ``index``: the model's image transform, with
    its augmentation when ``train`` (as the trainer prepares its own batches)."""
    batch = iterate(
        data.inputs,
        [index],
        transform=input_transform(model),
        device=device,
        train=train,
        last=channels_last(model),
    )
    return next(iter(batch))


def classifier_labels(data: Data, index: np.ndarray, device: torch.device) -> torch.Tensor:
    """Labels (B,) at ``index``, long, on ``device``."""
    return torch.as_tensor(data.labels[index], dtype=torch.long, device=device)


@dataclass
class LMOptions(TrainConfig):
    """Optimisation of a language model's unlearning (TOFU, ``locuslab/tofu`` config/forget.yaml
    and forget.py: AdamW, lr 1e-5, weight decay 0.01, batch 16 x 4 accumulation, 5 epochs,
    warmup one epoch, Trainer's gradient clipping at 1, prompts + answers of up to 500 tokens).
    TOFU decays linearly after warmup; the shared trainer decays with a cosine."""

    epochs: int = param(5, "passes over the forget set (TOFU forget.yaml num_epochs)")
    lr: float = param(1e-5, "peak learning rate (TOFU forget.yaml)")
    weight_decay: float = param(0.01, "AdamW weight decay (TOFU forget.yaml)")
    batch_size: int = param(64, "examples per step (TOFU: batch_size 16 x accumulation 4)")
    warmup_steps: int | None = param(
        None, "linear warmup steps; null: one epoch's steps (TOFU warmup_steps=steps_per_epoch)"
    )
    max_length: int = param(500, "tokens per prompt + answer (TOFU forget.py max_length)")


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Optimiser steps in one pass over ``n`` examples (as :func:`chunks` batches them)."""
    return len(chunks(np.arange(n), batch_size))


def run_training(
    model: nn.Module,
    loss_fn: Callable[[Batch], torch.Tensor],
    cfg: TrainConfig,
    *,
    n: int,
    seed: int,
    device: torch.device,
    method: str,
    inputs: Any = None,
    labels: np.ndarray | None = None,
    plan: list[np.ndarray] | None = None,
    params: list[nn.Parameter] | None = None,
    stateful: Sequence[Any] = (),
) -> TrainResult:
    """The shared trainer over ``n`` examples (positions ``Batch.index``), seeded.

    Args:
        inputs, labels: the examples the trainer batches itself (a classifier's set); default
            positions only, for losses that read their batches from ``Batch.index``.
        plan: the positions of each epoch (default a permutation per epoch).
        params: the parameters to optimise (default every one requiring grad).
        stateful: objects the loss changes (a :class:`Cycle`), kept in training checkpoints.

    Raises:
        ConfigError: ``select`` is not ``last`` (an unlearning run has no validation split).
    """
    if cfg.select != "last":
        raise ConfigError(f"unlearning method '{method}': select must be 'last', got {cfg.select}")
    warmup = getattr(cfg, "warmup_steps", 0)
    if warmup is None:
        cfg = dataclasses.replace(cfg, warmup_steps=steps_per_epoch(n, cfg.batch_size))
    inputs = list(range(n)) if inputs is None else inputs
    labels = np.zeros(n, dtype=np.int64) if labels is None else labels
    return train(
        model,
        loss_fn,
        inputs,
        labels,
        cfg,
        seed=seed,
        device=device,
        description=f"unlearn.{method}",
        params=params,
        plan=plan,
        stateful=stateful,
    )


def lm_batch(
    scorer: nn.Module, data: Data, index: Sequence[int], max_length: int, device: torch.device
) -> dict[str, torch.Tensor]:
    """Answer-only batch (:func:`shiftlab.lm.answer_loss.answer_only_batch`) of the examples at
    ``index``, on ``device``: ``input_ids``, ``attention_mask``, ``position_ids``, ``labels``
    (B, T), labels -100 off the answer."""
    batch = answer_only_batch(
        scorer.tokenizer,
        [data.prompts[i] for i in index],
        [data.answers[i] for i in index],
        max_length=max_length,
    )
    return {k: v.to(device) for k, v in batch.items()}


def text_batch(
    tokenizer: Any, texts: Sequence[str], max_length: int, device: torch.device
) -> dict[str, torch.Tensor]:
    """Whole texts (with the tokenizer's BOS), cut on the right to ``max_length`` tokens and
    right-padded: ``input_ids``, ``attention_mask``, ``position_ids`` (B, T)."""
    rows = [encode(tokenizer, text)[:max_length] for text in texts]
    for i, row in enumerate(rows):
        if not row:
            raise DataError(f"text {i} has no tokens")
    ids, mask, positions = pad(rows, pad_id(tokenizer), "right")
    return {
        "input_ids": ids.to(device),
        "attention_mask": mask.to(device),
        "position_ids": positions.to(device),
    }


def lm_logits(lm: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Next-token logits (B, T, V) of a Hugging Face causal LM on a padded batch."""
    return lm(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        position_ids=batch["position_ids"],
    ).logits


def answer_nll(lm: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Each example's answer negative log-likelihood -log pi(y|x), summed over its answer tokens
    (TOFU's ``get_batch_loss``), and its number of answer tokens |y|.

    Returns:
        ``nll`` (B,) float, differentiable, and ``lengths`` (B,) long.
    """
    labels = batch["labels"][:, 1:]
    logits = lm_logits(lm, batch)[:, :-1]
    nll = F.cross_entropy(
        logits.flatten(0, 1).float(),
        labels.flatten(),
        ignore_index=IGNORE_INDEX,
        reduction="none",
    ).view(labels.shape)
    return nll.sum(dim=1), (labels != IGNORE_INDEX).sum(dim=1)


def retain_answer_loss(
    scorer: nn.Module,
    retain: Data,
    cycle: Cycle,
    size: int,
    max_length: int,
    device: torch.device,
) -> torch.Tensor:
    """Token-mean answer cross-entropy of the next ``size`` retain examples (the retain term of
    TOFU's ``grad_diff`` and NPO's ``npo_grad_diff``)."""
    batch = lm_batch(scorer, retain, cycle.next(size), max_length, device)
    return answer_loss(scorer.model, batch)


def finetune_answers(
    model: nn.Module,
    data: Data,
    cfg: LMOptions,
    *,
    seed: int,
    device: torch.device,
    method: str,
) -> nn.Module:
    """A copy of ``model`` trained further on ``data``'s answers (the answer loss): the
    reinforced model of WHP and of task-vector negation."""
    reinforced = unlearned_copy(model, device)

    def loss_fn(batch: Batch) -> torch.Tensor:
        encoded = lm_batch(reinforced, data, batch.index, cfg.max_length, device)
        return answer_loss(reinforced.model, encoded)

    run_training(reinforced, loss_fn, cfg, n=len(data), seed=seed, device=device, method=method)
    return reinforced.eval()


def check_finite(loss: torch.Tensor, method: str, step: int, lr: float) -> None:
    """Raise a TrainingError if the loss is NaN or infinite (as the shared trainer does)."""
    value = float(loss.detach())
    if not math.isfinite(value):
        raise TrainingError(
            f"unlearn.{method}: the loss became {value} at step {step}; lower the learning rate "
            f"(lr={lr:g}) or check the data"
        )

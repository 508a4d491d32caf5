"""The contract every unlearning method follows, and what the methods share.

A method is a class registered in :data:`UNLEARN` with its options dataclass and the model kinds
it applies to (``encoder``: a classifier on an encoder's features; ``causal_lm``), declared once
at registration::

    @UNLEARN.register("npo", options=NPOOptions, kinds=("causal_lm",))
    class NPO(LossUnlearner):
        def forget_loss(self, batch): ...

(a method module imports what it needs from here: ``UNLEARN``, ``param``, ``Batch``, the
options and base classes). It runs through :func:`unlearn`, the family's one entry point, which
builds the options, checks the model's kind and the sets, and returns an unlearned copy: the
model it is given is never modified (not even switched between train and eval mode).

- :class:`Unlearner` is the base: the options, the kind, the seed and device, copies of the
  model, and which sets a method reads. A method that is not a loss (SCRUB's alternating passes,
  SSD's dampening, task vectors, WHP, RMU's steered layer) overrides :meth:`Unlearner.unlearn`.
- :class:`LossUnlearner` is a method written as losses: ``forget_weight * forget_loss(forget
  batch) + retain_weight * retain_loss(retain batch)``. The base makes the student copy, walks
  one set with the shared trainer (:func:`shiftlab.training.train`: optimiser, schedule,
  precision, checkpoints) and draws the other set's batch from a :class:`Cycle`, as the
  references zip one loader with ``itertools.cycle`` of the other (SCRUB's NegGrad+) or pair each
  forget example with a retain example (TOFU's ``TextForgetDatasetQA``); a term of weight 0 is
  never computed, and the set it would read may be empty. A method writes ``forget_loss`` (the
  retain term defaults to the plain training loss: cross-entropy of a classifier's labels, or the
  answer loss of a language model).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shiftlab.data.batches import channels_last, input_transform, iterate
from shiftlab.errors import ConfigError, DataError, TrainingError
from shiftlab.lm.answer_loss import answer_loss, answer_only_batch
from shiftlab.registry import UNLEARN
from shiftlab.training import Batch, ReferenceSGD, TrainOptions, TrainResult, train
from shiftlab.training.trainer import epoch_batches
from shiftlab.typed import options_of, param

Kind = Literal["encoder", "causal_lm"]
DESCRIBED = {
    "encoder": "a classifier's data (inputs and labels)",
    "causal_lm": "a language model's data (prompts and answers)",
}

#: What a method module needs, in one import.
__all__ = [
    "UNLEARN",
    "Batch",
    "Cycle",
    "Data",
    "LMOptions",
    "LossUnlearner",
    "LossWeights",
    "Original",
    "ReferenceSGD",
    "RelativeBudget",
    "RelativeSGD",
    "Unlearner",
    "epoch_batches",
    "overridden",
    "param",
    "ready",
    "relative",
    "unlearn",
]


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
        """``encoder`` (a classifier's inputs and labels) or ``causal_lm`` (prompts, answers)."""
        return "encoder" if self.labels is not None else "causal_lm"

    def __len__(self) -> int:
        return len(self.labels) if self.labels is not None else len(self.prompts or [])

    def texts(self, index: Sequence[int]) -> list[str]:
        """Prompt + answer of each example at ``index``: the documents of text-level methods."""
        return [self.prompts[i] + self.answers[i] for i in index]


def model_kind(model: nn.Module) -> Kind:
    """``causal_lm`` for a language model with its tokenizer (an ``LMScorer``), else
    ``encoder`` (any module mapping a batch of inputs to (B, K) logits)."""
    return "causal_lm" if hasattr(model, "tokenizer") and hasattr(model, "model") else "encoder"


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Optimiser steps in one pass over ``n`` examples (as the shared trainer batches them)."""
    return len(epoch_batches(np.arange(n), batch_size))


class Cycle:
    """An endless stream of positions of ``n`` examples, one pass after another: the other
    set's batches for a loop that walks one set.

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


@dataclass(frozen=True)
class Original:
    """How the model being unlearned was trained (its recipe's optimisation over its training
    set): what an unlearning method's relative budget and learning rate are measured against.

    Attributes:
        steps: optimiser steps of the original training.
        epochs, lr, batch_size, optimizer, momentum, weight_decay: its recipe's settings.
    """

    steps: int
    epochs: int
    lr: float
    batch_size: int
    optimizer: str
    momentum: float
    weight_decay: float

    @classmethod
    def of(cls, options: Any, n: int) -> Original | None:
        """The original training of a recipe's options over ``n`` examples (None for a recipe
        that does not train with the shared trainer, e.g. a linear probe's solver)."""
        if not isinstance(options, TrainOptions):
            return None
        steps = options.epochs * steps_per_epoch(n, options.batch_size)
        fields = ("epochs", "lr", "batch_size", "optimizer", "momentum", "weight_decay")
        return cls(steps, **{k: getattr(options, k) for k in fields})


@dataclass
class LossWeights:
    """The two weights of a :class:`LossUnlearner` (subclasses set their defaults and help;
    the range stays this one)."""

    forget_weight: float = param(1.0, "weight of the forget term", within="[0, inf)")
    retain_weight: float = param(0.0, "weight of the retain term", within="[0, inf)")


@dataclass
class RelativeBudget:
    """A budget and learning rate relative to the original training (``budget``: optimiser
    steps as a fraction of the original's; ``lr_scale``: a multiple of its peak lr, with its
    optimiser); null: the method's absolute options."""

    budget: float | None = param(
        None, "steps as a fraction of the original training's; null: epochs as given",
        within="(0, inf)",
    )  # fmt: skip
    lr_scale: float | None = param(
        None, "lr as a multiple of the original recipe's, with its optimiser; null: lr as given",
        within="(0, inf)",
    )  # fmt: skip


@dataclass
class RelativeSGD(ReferenceSGD, RelativeBudget):
    """A classifier method's optimisation: the reference's SGD (its absolute epochs and lr, used
    on their own outside a run), with its budget and learning rate relative to the original
    training as the reference has them in effect (``budget``: its optimiser steps over the
    original training's; ``lr_scale``: its lr over the original's peak lr). In a run, a relative
    setting replaces the absolute one: the epochs that make ``budget`` of the original steps, and
    the original recipe's optimiser (its momentum and weight decay) at ``lr_scale`` times its lr
    (reference lrs were tuned for SGD on CIFAR convnets, not for a fine-tuned transformer)."""


@dataclass
class LMOptions(TrainOptions):
    """Optimisation of a language model's unlearning (TOFU, ``locuslab/tofu`` config/forget.yaml
    and forget.py: AdamW, lr 1e-5, weight decay 0.01, batch 16 x 4 accumulation, 5 epochs,
    warmup one epoch, Trainer's gradient clipping at 1, prompts + answers of up to 500 tokens).
    TOFU decays linearly after warmup; the shared trainer decays with a cosine. TOFU, NPO and
    SimNPO unlearn with the fine-tune's own optimiser, lr and batch, for as many epochs over the
    forget set as the fine-tune ran (NPO and SimNPO: twice as many): in a run, ``epochs_scale``
    and ``lr_scale`` say so relative to the original recipe, replacing epochs, lr, batch size,
    optimiser and weight decay."""

    epochs: int = param(5, "passes over the forget set (TOFU forget.yaml num_epochs)")
    lr: float = param(1e-5, "peak learning rate (TOFU forget.yaml)")
    weight_decay: float = param(0.01, "AdamW weight decay (TOFU forget.yaml)")
    batch_size: int = param(64, "examples per step (TOFU: batch_size 16 x accumulation 4)")
    warmup_steps: int | None = param(
        None, "linear warmup steps; null: one epoch's steps (TOFU warmup_steps=steps_per_epoch)"
    )
    max_length: int = param(
        500, "tokens per prompt + answer (TOFU forget.py max_length)", within="[2, inf)"
    )
    epochs_scale: float | None = param(
        1.0, "passes over the forget set per original epoch (TOFU: 5 and 5); null: epochs",
        within="(0, inf)",
    )  # fmt: skip
    lr_scale: float | None = param(
        1.0, "lr as a multiple of the original recipe's, with its optimiser and batch; null: lr",
        within="(0, inf)",
    )  # fmt: skip


#: The absolute options each relative setting replaces in a run.
REPLACES = {
    "budget": ("epochs",),
    "epochs_scale": ("epochs",),
    "lr_scale": ("lr", "optimizer", "momentum", "weight_decay", "batch_size"),
}


def overridden(options: Any) -> list[str]:
    """Options set away from their defaults that a relative setting replaces in a run (what to
    warn about): ``["epochs (budget)", ...]``, nested options by their path."""
    from shiftlab.typed import non_default

    found: list[str] = []

    def walk(obj: Any, changed: dict[str, Any], where: str) -> None:
        for key, value in changed.items():
            inner = getattr(obj, key, None)
            if isinstance(value, dict) and dataclasses.is_dataclass(inner):
                walk(inner, value, f"{where}{key}.")
        for setting, absolute in REPLACES.items():
            if getattr(obj, setting, None) is None:
                continue
            found.extend(f"{where}{k} ({setting})" for k in absolute if k in changed)

    walk(options, non_default(options), "")
    return found


def relative(options: Any, original: Original | None, n: int) -> Any:
    """``options`` with their relative settings resolved against ``original`` (walking ``n``
    examples per epoch); as they are without an original or relative settings."""
    if original is None:
        return options
    changes: dict[str, Any] = {}
    lr_scale = getattr(options, "lr_scale", None)
    if lr_scale is not None:
        changes.update(
            lr=lr_scale * original.lr,
            optimizer=original.optimizer,
            momentum=original.momentum,
            weight_decay=original.weight_decay,
        )
        if isinstance(options, LMOptions):
            changes["batch_size"] = original.batch_size
    batch = changes.get("batch_size", options.batch_size)
    if getattr(options, "budget", None) is not None:
        steps = options.budget * original.steps
        changes["epochs"] = max(1, round(steps / steps_per_epoch(n, batch)))
    if getattr(options, "epochs_scale", None) is not None:
        changes["epochs"] = max(1, round(options.epochs_scale * original.epochs))
    return dataclasses.replace(options, **changes) if changes else options


class Unlearner:
    """The base of every unlearning method: its options, the kind of model it runs on, the
    seed and the device, and the copies it works on.

    Args:
        options: the method's options dataclass (built by :func:`unlearn`).
        name: the method's registered name (progress bars, messages).
        kind: the model's kind (one the method is registered for).
        seed: seeds shuffling, initial states and dropout.
        device: where it trains.
    """

    def __init__(
        self,
        options: Any,
        *,
        name: str,
        kind: Kind,
        seed: int,
        device: torch.device,
        original: Original | None = None,
    ) -> None:
        self.options, self.name, self.kind = options, name, kind
        self.seed, self.device, self.original = seed, device, original

    def uses(self) -> tuple[bool, bool]:
        """Whether the method reads the forget set and the retain set (a set it reads must not
        be empty)."""
        return True, True

    def unlearn(self, model: nn.Module, forget: Data, retain: Data) -> nn.Module:
        """The unlearned copy of ``model``, in eval mode."""
        raise NotImplementedError

    def copy(self, model: nn.Module) -> nn.Module:
        """A deep copy of ``model`` on the device (an LMScorer's copy shares its tokenizer)."""
        return copy.deepcopy(model).to(self.device)

    def frozen(self, model: nn.Module) -> nn.Module:
        """A deep copy in eval mode with no parameter requiring grad: a teacher or reference."""
        frozen = self.copy(model).eval()
        for p in frozen.parameters():
            p.requires_grad_(False)
        return frozen

    def train(
        self,
        model: nn.Module,
        loss_fn: Any,
        options: TrainOptions,
        n: int,
        *,
        description: str | None = None,
        **kwargs: Any,
    ) -> TrainResult:
        """The shared trainer over ``n`` examples (``Batch.index`` are positions), seeded.
        ``kwargs`` go to :func:`shiftlab.training.train` (``inputs``, ``labels``, ``plan``,
        ``params``, ``stateful``).

        Raises:
            ConfigError: ``select`` is not ``last`` (an unlearning run has no validation split).
        """
        what = description or f"unlearn.{self.name}"
        if options.select != "last":
            raise ConfigError(f"{what}: select must be 'last', got {options.select}")
        if getattr(options, "warmup_steps", 0) is None:  # one epoch's steps (TOFU)
            options = dataclasses.replace(
                options, warmup_steps=steps_per_epoch(n, options.batch_size)
            )
        inputs = kwargs.pop("inputs", None)
        labels = kwargs.pop("labels", None)
        inputs = list(range(n)) if inputs is None else inputs
        labels = np.zeros(n, dtype=np.int64) if labels is None else labels
        return train(
            model,
            loss_fn,
            inputs,
            labels,
            options,
            seed=self.seed,
            device=self.device,
            description=what,
            **kwargs,
        )

    def finetune_answers(self, model: nn.Module, data: Data, options: Any) -> nn.Module:
        """A copy of ``model`` trained further on ``data``'s answers (the answer loss): the
        reinforced model of WHP and of task-vector negation."""
        reinforced = self.copy(model)

        def loss_fn(batch: Batch) -> torch.Tensor:
            encoded = self.answers(reinforced, data, batch.index, options.max_length)
            return answer_loss(reinforced.model, encoded)

        what = f"unlearn.{self.name}.reinforce"
        self.train(reinforced, loss_fn, options, len(data), description=what)
        return reinforced.eval()

    def answers(
        self, scorer: nn.Module, data: Data, index: Sequence[int], max_length: int | None = None
    ) -> dict[str, torch.Tensor]:
        """The answer-only batch (:func:`shiftlab.lm.answer_loss.answer_only_batch`) of the
        examples at ``index``, on the device."""
        batch = answer_only_batch(
            scorer.tokenizer,
            [data.prompts[i] for i in index],
            [data.answers[i] for i in index],
            max_length=max_length or self.options_for().max_length,
        )
        return {k: v.to(self.device) for k, v in batch.items()}

    def options_for(self) -> Any:
        """The optimisation options of this model's kind: the options themselves, or, for a
        method of both kinds, their ``classifier`` or ``causal_lm`` field."""
        field = {"encoder": "classifier", "causal_lm": "causal_lm"}[self.kind]
        return getattr(self.options, field, self.options)


class LossUnlearner(Unlearner):
    """A method that is a loss: ``forget_weight * forget_loss + retain_weight * retain_loss``
    over a student copy (see the module docstring). ``walk`` is the set the trainer walks
    (``batch_size`` examples per step); the other set's batch (``forget_batch_size``, else as
    many examples) is drawn from a seeded :class:`Cycle`. Weights are read from the options
    (``forget_weight`` default 1, ``retain_weight`` default 0)."""

    walk: ClassVar[Literal["forget", "retain"]] = "forget"
    #: whether the losses read a frozen copy of the original model (``self.reference``).
    uses_reference: ClassVar[bool] = False

    def weights(self) -> tuple[float, float]:
        """The forget and retain terms' weights."""
        return (
            float(getattr(self.options, "forget_weight", 1.0)),
            float(getattr(self.options, "retain_weight", 0.0)),
        )

    def uses(self) -> tuple[bool, bool]:
        forget_weight, retain_weight = self.weights()
        return forget_weight != 0, retain_weight != 0

    def setup(self, model: nn.Module) -> None:
        """Prepare what the losses need besides the student (a frozen reference)."""

    def forget_loss(self, batch: Batch) -> torch.Tensor:
        """The forget term of a batch (``batch.inputs``: a classifier's model-ready inputs,
        with ``batch.labels``; or a language model's answer-only batch)."""
        raise NotImplementedError

    def retain_loss(self, batch: Batch) -> torch.Tensor:
        """The retain term: the plain training loss by default."""
        return self.plain_loss(batch)

    def plain_loss(self, batch: Batch) -> torch.Tensor:
        """The training loss of the student: cross-entropy, or the answers' token-mean loss."""
        if self.kind == "causal_lm":
            return answer_loss(self.student.model, batch.inputs)
        return F.cross_entropy(self.student(batch.inputs), batch.labels)

    def loss(self, forget: Batch | None, retain: Batch | None) -> torch.Tensor:
        """``forget_weight * forget_loss(forget) + retain_weight * retain_loss(retain)``; a
        term of weight 0 is not computed (its batch may be None). The forget term comes first,
        as the references compute it."""
        forget_weight, retain_weight = self.weights()
        terms = []
        if forget_weight:
            terms.append(forget_weight * self.forget_loss(forget))
        if retain_weight:
            terms.append(retain_weight * self.retain_loss(retain))
        return terms[0] if len(terms) == 1 else terms[0] + terms[1]

    def ready(self, data: Data, index: np.ndarray) -> Batch:
        """Model-ready batch of the examples at ``index`` of ``data``."""
        if self.kind == "causal_lm":
            return Batch(self.answers(self.student, data, index), None, index)
        return ready(self.student, data, index, self.device)

    def unlearn(self, model: nn.Module, forget: Data, retain: Data) -> nn.Module:
        walked_n = len(forget) if self.walk == "forget" else len(retain)
        options = relative(self.options_for(), self.original, walked_n)
        if self.uses_reference:
            self.reference = self.frozen(model)
        self.student = self.copy(model)
        self.setup(model)
        forget_weight, retain_weight = self.weights()
        walked, other = (forget, retain) if self.walk == "forget" else (retain, forget)
        other_weight = retain_weight if self.walk == "forget" else forget_weight
        size = getattr(options, "forget_batch_size", None) if self.walk == "retain" else None
        cycle = Cycle(len(other), np.random.default_rng([self.seed, 1])) if other_weight else None

        def loss_fn(batch: Batch) -> torch.Tensor:
            if self.kind == "causal_lm":
                batch = Batch(self.answers(self.student, walked, batch.index), None, batch.index)
            drawn = None
            if cycle is not None:
                drawn = self.ready(other, cycle.next(size or len(batch.index)))
            forget_batch, retain_batch = (batch, drawn) if self.walk == "forget" else (drawn, batch)
            return self.loss(forget_batch, retain_batch)

        classifier = self.kind == "encoder"
        self.train(
            self.student,
            loss_fn,
            options,
            len(walked),
            inputs=walked.inputs if classifier else None,
            labels=walked.labels if classifier else None,
            stateful=[cycle] if cycle is not None else [],
        )
        return self.student.eval()


def ready(
    model: nn.Module, data: Data, index: np.ndarray, device: torch.device, train: bool = True
) -> Batch:
    """A classifier's model-ready batch of the examples at ``index``: inputs through the
    model's image transform (with its augmentation when ``train``, as the trainer prepares its
    own batches) and labels, on ``device``."""
    inputs = iterate(
        data.inputs,
        [index],
        transform=input_transform(model),
        device=device,
        train=train,
        last=channels_last(model),
    )
    labels = torch.as_tensor(data.labels[index], dtype=torch.long, device=device)
    return Batch(next(iter(inputs)), labels, index)


def check_finite(loss: torch.Tensor, method: str, step: int, lr: float) -> None:
    """Raise a TrainingError if the loss is NaN or infinite (as the shared trainer does)."""
    value = float(loss.detach())
    if not math.isfinite(value):
        raise TrainingError(
            f"unlearn.{method}: the loss became {value} at step {step}; lower the learning rate "
            f"(lr={lr:g}) or check the data"
        )


def unlearn(
    name: str,
    model: nn.Module,
    forget: Data,
    retain: Data,
    options: Any = None,
    *,
    seed: int = 0,
    device: torch.device | str = "cpu",
    original: Original | None = None,
) -> nn.Module:
    """Unlearn ``forget`` from ``model`` with the method registered as ``name``.

    Args:
        name: a registered method (``shiftlab list unlearning``).
        model: a classifier (inputs -> logits) or an LMScorer; never modified.
        forget: the examples to forget.
        retain: the rest of the training data (a method may not read it).
        options: the method's options dataclass, or a mapping of them (default: its defaults).
        seed: seeds shuffling, initial states and dropout.
        device: where it trains.
        original: how the model was trained: relative budgets and learning rates are measured
            against it (None: every option as given).

    Returns:
        The unlearned copy, in eval mode.

    Raises:
        ConfigError: an unknown method or option, or a method for the other kind of model.
        DataError: a set the method reads is empty or holds the other kind of data.
    """
    entry = UNLEARN[name]
    built = options_of(entry.options, options, f"unlearn.methods.{name}")
    kind = model_kind(model)
    if entry.kinds and kind not in entry.kinds:
        wanted = "a causal language model (an LMScorer)" if kind == "encoder" else "a classifier"
        raise ConfigError(f"unlearning method '{name}' needs {wanted}, got {type(model).__name__}")
    device = torch.device(device)
    method = entry.obj(
        built, name=entry.name, kind=kind, seed=seed, device=device, original=original
    )
    sets = (("forget", forget), ("retain", retain))
    for (set_name, data), read in zip(sets, method.uses(), strict=True):
        if not read:
            continue
        if len(data) == 0:
            raise DataError(f"unlearning method '{name}' needs a non-empty {set_name} set")
        if data.kind != kind:
            held = DESCRIBED[data.kind]
            raise DataError(
                f"unlearning method '{name}': the {set_name} set holds {held}, but the model is "
                f"{'a language model' if kind == 'causal_lm' else 'a classifier'}"
            )
    return method.unlearn(model, forget, retain)

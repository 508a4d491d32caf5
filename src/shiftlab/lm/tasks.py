"""Language-model tasks as data: every split of a run turned into prompts.

A task is a prompt template plus label words (classification: each class is scored by the
log-probability of its verbalizer after the prompt, so accuracy, macro-F1 and ECE work as for
classifiers) or reference answers (generation: greedy decoding, exact match and ROUGE-L). The
run's own data becomes the ID task (trained on) and its OOD domains the same task under shift;
``capabilities:`` add other tasks the model never trains on, each an OOD split of its own.

``shots: k`` puts k seeded demonstrations from the task's demonstration pool before each prompt
(the training split, or the training set of the entry being built: a model retrained or
unlearned without the forget set never sees a forget text in a prompt), never the evaluated
example itself; ``label_map: permuted`` relabels the demonstrations and the
gold labels consistently with a seeded permutation of the label words (the in-context learning
tests of Kotha et al., arXiv 2309.10105, where the model must follow the demonstrations over its
prior).
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from shiftlab.config.sections import CapabilityConfig, TaskConfig
from shiftlab.data.benchmark import Benchmark, Split
from shiftlab.data.splits import stratified_subsample
from shiftlab.errors import DataError
from shiftlab.lm.prompts import (
    demonstrations,
    format_prompt,
    join_demonstrations,
    permuted_label_map,
    template_fields,
)


@dataclass(frozen=True)
class PromptItem:
    """One example as a language model sees it.

    Attributes:
        prompt: the full prompt (demonstrations included, chat template applied).
        choices: the label words scored after it (classification); empty for generation.
        answer: the gold label word, or the reference answer.
        user: the prompt before the chat template (demonstrations and query): what a prompt
            transform rewrites (default: the prompt).
        text: the example's own filled template, without demonstrations or chat template:
            what membership scores and MUSE's VerbMem read, with the answer (default: the
            prompt).
    """

    prompt: str
    choices: tuple[str, ...]
    answer: str
    user: str | None = None
    text: str | None = None

    @property
    def own_text(self) -> str:
        """The example's own text and answer (no demonstrations, no chat template)."""
        return (self.text if self.text is not None else self.prompt) + self.answer

    def __str__(self) -> str:
        return self.prompt


def is_generation(split: Split) -> bool:
    """Whether a split's examples are answered by generation (no label words to score)."""
    return (
        bool(split.inputs)
        and isinstance(split.inputs[0], PromptItem)
        and not split.inputs[0].choices
    )


def label_words(task: TaskConfig, class_names: list[str]) -> list[str] | None:
    """The verbalizer of each class, in class order (None for a generation task).

    Raises:
        DataError: a class has no label word, or a label word is empty.
    """
    if task.label_words is None:
        return None
    missing = [c for c in class_names if c not in task.label_words]
    if missing:
        raise DataError(
            f"task {task.name}: no label word for class '{missing[0]}' "
            f"(label_words names {', '.join(task.label_words)}; classes: {', '.join(class_names)})"
        )
    words = [task.label_words[c] for c in class_names]
    if any(not w.strip() for w in words):
        raise DataError(f"task {task.name}: a label word is empty: {words}")
    for i, word in enumerate(words):
        if word in words[:i]:
            other = class_names[words.index(word)]
            raise DataError(
                f"task {task.name}: classes '{other}' and '{class_names[i]}' share the label "
                f"word {word!r}; each class needs its own, or every prompt scores the same"
            )
    return words


def check_task(task: TaskConfig, class_names: list[str], split: Split, pool: Split) -> None:
    """What makes ``task`` unusable on ``split`` with demonstrations from ``pool``, found from
    the config and the data alone (before a model loads).

    Raises:
        DataError: no label words and no answers, label words that miss or share a class, a
            template without ``{text}`` or naming another field, more shots than ``pool`` holds.
    """
    words = label_words(task, class_names)
    if words is None and split.answers is None:
        raise DataError(
            f"task {task.name} has neither label words (task.label_words) nor reference answers "
            "(an answer_column in the data): nothing to score"
        )
    format_prompt(task.template, {"text": ""})  # a field that is not a column
    if "text" not in template_fields(task.template):
        raise DataError(
            f"task {task.name}: the template {task.template!r} has no {{text}} field, so every "
            "prompt would be the same; put {text} where the example goes"
        )
    if task.shots > len(pool) - (1 if pool is split else 0):
        raise DataError(
            f"task {task.name}: shots={task.shots} but its training split has {len(pool)} examples"
        )


def check_tasks(
    task: TaskConfig, benchmark: Benchmark, capabilities: list[tuple[CapabilityConfig, Benchmark]]
) -> None:
    """:func:`check_task` for the run's task on its data and every capability on its own."""
    check_task(task, benchmark.class_names, benchmark.train, benchmark.train)
    for capability, data in capabilities:
        check_task(capability, data.class_names, data.test, data.train)


def task_labels(
    task: TaskConfig, class_names: list[str], labels: np.ndarray, inverse: bool = False
) -> np.ndarray:
    """Labels as a task's prompts index them (``label_map: permuted`` relabels the classes;
    ``inverse``: back to the data's classes)."""
    if task.label_words is None or task.label_map != "permuted":
        return np.asarray(labels)
    perm = np.asarray(permuted_label_map(label_words(task, class_names), task.seed))
    return np.argsort(perm)[labels] if inverse else perm[labels]


def task_split(
    split: Split,
    task: TaskConfig,
    class_names: list[str],
    pool: Split,
    *,
    chat: Any = None,
) -> Split:
    """``split`` with its texts turned into :class:`PromptItem` s of ``task``; demonstrations
    from ``pool`` (the demonstration pool: a training split, never texts the model being built
    must not see); labels re-indexed by the label permutation."""
    check_task(task, class_names, split, pool)
    words = label_words(task, class_names)
    perm = np.arange(len(words)) if words is not None else np.zeros(1, dtype=np.int64)
    if words is not None and task.label_map == "permuted":
        perm = np.asarray(permuted_label_map(words, task.seed))

    def answer_of(source: Split, i: int) -> str:
        return words[perm[source.labels[i]]] if words is not None else str(source.answers[i])

    items = []
    for i, text in enumerate(split.inputs):
        row = {"text": str(text)}
        query = format_prompt(task.template, row)
        demos = []
        if task.shots:
            seed = [task.seed, zlib.crc32(split.name.encode()), i]
            exclude = i if pool is split else None
            index = demonstrations(len(pool), task.shots, seed=seed, exclude_index=exclude)
            demos = [
                (format_prompt(task.template, {"text": str(pool.inputs[j])}), answer_of(pool, j))
                for j in index
            ]
        user = join_demonstrations(demos, query, separator=task.separator)
        prompt = user
        if task.chat:
            if chat is None:
                raise DataError(f"task {task.name}: chat: true, but the model has no chat template")
            prompt = chat(user)
        choices = tuple(words) if words is not None else ()
        items.append(PromptItem(prompt, choices, answer_of(split, i), user=user, text=query))
    labels = perm[split.labels] if words is not None else split.labels
    info = {**split.info, "task": task.name}
    if words is None:  # answered by greedy decoding
        info.update(generation=True, max_new_tokens=task.max_new_tokens)
    return dataclasses.replace(split, inputs=items, labels=labels, info=info, parent=None)


def capability_split(
    capability: CapabilityConfig, benchmark: Benchmark, *, seed: int, chat: Any = None
) -> Split:
    """The capability's evaluation split (its ``split`` of its own data, capped), as prompts."""
    source = {"train": benchmark.train, "id_val": benchmark.val, "id_test": benchmark.test}[
        capability.split
    ]
    if capability.max_examples is not None and len(source) > capability.max_examples:
        rng = np.random.default_rng(seed)
        source = source.subset(stratified_subsample(source.labels, capability.max_examples, rng))
    split = task_split(source, capability, benchmark.class_names, benchmark.train, chat=chat)
    return dataclasses.replace(
        split,
        name=capability.name,
        role="ood",
        info={**split.info, "capability": True},
    )


def lm_benchmark(
    benchmark: Benchmark,
    task: TaskConfig,
    capabilities: list[tuple[CapabilityConfig, Benchmark]],
    *,
    seed: int,
    chat: Any = None,
    pool: Split | None = None,
) -> Benchmark:
    """The run's benchmark with every split as prompts of ``task``, plus one OOD split per
    capability (another task, from its own data). Demonstrations come from ``pool`` (default
    the training split): a model trained on part of it gets prompts whose demonstrations are
    its own training examples only."""
    names = benchmark.class_names
    pool = benchmark.train if pool is None else pool
    train = task_split(benchmark.train, task, names, pool, chat=chat)
    convert = lambda s: task_split(s, task, names, pool, chat=chat)  # noqa: E731
    ood = [convert(s) for s in benchmark.ood]
    for capability, data in capabilities:
        ood.append(capability_split(capability, data, seed=seed, chat=chat))
    return dataclasses.replace(
        benchmark,
        train=train,
        val=convert(benchmark.val),
        test=convert(benchmark.test),
        ood=ood,
    )


def chat_template(tokenizer: Any) -> Any:
    """``prompt -> chat-formatted prompt`` (one user turn, the assistant's turn opened), or None
    when the tokenizer has no chat template."""
    if not getattr(tokenizer, "chat_template", None):
        return None
    return lambda prompt: tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )


def check_label_words(benchmark: Benchmark, tokenizer: Any) -> None:
    """Every label word of every split must be at least one token.

    Raises:
        ConfigError: a label word tokenizes to nothing.
    """
    from shiftlab.errors import ConfigError
    from shiftlab.lm.tokens import encode_continuation

    for split in [benchmark.train, *benchmark.eval_splits()]:
        for word in split.inputs[0].choices if split.inputs else ():
            if not encode_continuation(tokenizer, word):
                raise ConfigError(f"label word {word!r} of split {split.name} has no tokens")

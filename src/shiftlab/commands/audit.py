"""``shiftlab audit CONFIG --out DIR``: ARCA and its baselines on many targets, one budget.

The config names a causal LM backbone and an ``audit:`` section; each target is searched by
every method with the same number of forward and backward passes, and ``DIR/audit.jsonl`` gets
one row per (target, method): the input found, the greedy output it really produces, success,
passes and seconds. ``DIR/report.md`` and ``report.html`` give the success rate per method at
that budget and the passes spent per success. Targets are listed, or drawn (seeded) from the
model's vocabulary: one- and two-token English words, as ARCA's reverse experiments search
short outputs.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from shiftlab.atomic import write_atomic
from shiftlab.commands.lm_config import check_output, read_lm_config
from shiftlab.config.sections import BackboneConfig
from shiftlab.errors import ConfigError
from shiftlab.registry import AUDITS
from shiftlab.report.tables import Table, fmt
from shiftlab.runtime import log
from shiftlab.typed import build, options_of, param


@dataclass
class AuditConfig:
    """What to search for, with which methods, and at what budget."""

    methods: list[str] = param(
        ["arca", "gcg"], "search methods, compared at equal budget", nonempty=True, unique=True
    )
    targets: list[str] = param([], "target outputs (mind the leading space: ' Paris')")
    random_targets: int = param(0, "also draw this many targets (seeded)", within="[0, inf)")
    random_targets_from: Literal["continuations", "words"] = param(
        "continuations",
        "continuations: the model's own greedy output after a random input of input_length "
        "tokens (an output it can be led to, as ARCA's reverse targets are); words: word tokens",
    )
    target_tokens: list[int] = param(
        [1, 2], "token lengths of drawn targets, in turn", within="[1, inf)", nonempty=True
    )
    max_output_tokens: int = param(
        2, "the output budget: longer targets are refused", within="[1, inf)"
    )
    input_length: int = param(3, "tokens of input searched", within="[1, inf)")
    prefix: str = param("", "fixed text before the input")
    budget: int = param(2000, "forward + backward passes per target and method", within="[3, inf)")
    seed: int = param(0, "seeds target draws and every search", within="[0, 4294967295]")
    options: dict[str, dict[str, Any]] = param(
        {}, "per method options, e.g. {arca: {batch_size: 32}}"
    )

    def __post_init__(self) -> None:
        for method in self.methods:
            AUDITS[method]  # unknown method: did-you-mean
        if not self.targets and not self.random_targets:
            raise ConfigError(
                "audit has no targets: list some under audit.targets or set audit.random_targets"
            )
        empty = [i for i, t in enumerate(self.targets) if not t.strip()]
        if empty:
            raise ConfigError(f"audit.targets[{empty[0]}] is empty; a target is the text to say")
        for method, options in self.options.items():
            if method not in self.methods:
                raise ConfigError(
                    f"audit.options.{method}: not one of audit.methods ({', '.join(self.methods)})"
                )
            options_of(AUDITS[method].options, options, f"audit.options.{method}")
        if any(n > self.max_output_tokens for n in self.target_tokens):
            raise ConfigError(
                f"audit target_tokens {self.target_tokens} must lie in 1..max_output_tokens "
                f"({self.max_output_tokens})"
            )


def word_tokens(tokenizer: Any) -> list[int]:
    """Token ids that decode to a space and a lower-case English word of 3+ letters."""
    found = []
    for i in range(len(tokenizer)):
        text = tokenizer.decode([i])
        if re.fullmatch(r" [a-z]{3,}", text):
            found.append(i)
    return found


def draw_targets(tokenizer: Any, count: int, lengths: list[int], seed: int) -> list[str]:
    """``count`` seeded targets of ``lengths[i % len(lengths)]`` word tokens each."""
    pool = word_tokens(tokenizer)
    rng = np.random.default_rng(seed)
    targets = []
    for i in range(count):
        ids = [int(t) for t in rng.choice(pool, size=lengths[i % len(lengths)], replace=False)]
        targets.append(tokenizer.decode(ids))
    return targets


def continuation_targets(
    model: Any, tokenizer: Any, count: int, lengths: list[int], input_length: int, seed: int
) -> list[str]:
    """``count`` seeded targets the model is known to say: the greedy continuation of
    ``lengths[i % len(lengths)]`` tokens after a random input of ``input_length`` word tokens
    (after BOS), kept when every token of it is a word of two letters or more (shorter tokens
    would make ARCA's forbidden-token rule forbid most of the vocabulary)."""
    from shiftlab.lm.audit.common import Problem, greedy_decode, token_texts

    pool = word_tokens(tokenizer)
    vocab = min(len(tokenizer), model.get_input_embeddings().weight.shape[0])
    texts = token_texts(tokenizer, vocab)
    bos = getattr(tokenizer, "bos_token_id", None)
    head = torch.tensor([bos] if bos is not None else [], dtype=torch.long)
    rng = np.random.default_rng(seed)
    targets: list[str] = []
    for _ in range(200 * max(count, 1)):
        if len(targets) == count:
            break
        length = lengths[len(targets) % len(lengths)]
        start = torch.tensor(rng.choice(pool, size=input_length), dtype=torch.long)
        allowed = torch.ones(vocab, dtype=torch.bool)
        problem = Problem(model, head, torch.zeros(length, dtype=torch.long), input_length, allowed)
        said = greedy_decode(problem, start)
        words = [texts[i].strip() for i in said if i < vocab]
        text = tokenizer.decode(said)
        if all(len(w) >= 2 and w.isalpha() for w in words) and text not in targets:
            targets.append(text)
    if len(targets) < count:
        raise ConfigError(f"audit: found only {len(targets)} continuation targets of {count}")
    return targets


def load_audit(path: Path) -> tuple[BackboneConfig, AuditConfig]:
    """The backbone and audit sections of an audit config file."""
    backbone, section = read_lm_config(path, "audit", "audits search a language model")
    return backbone, build(AuditConfig, section, "audit")


def summary_table(rows: list[dict[str, Any]], cfg: AuditConfig) -> Table:
    """Success rate per method, passes and seconds per success, at the shared budget."""
    values = []
    for method in cfg.methods:
        mine = [r for r in rows if r["method"] == method]
        wins = [r for r in mine if r["success"]]
        values.append(
            [
                method,
                f"{len(wins)}/{len(mine)}",
                len(wins) / len(mine) if mine else None,
                float(np.mean([r["passes"] for r in wins])) if wins else None,
                float(np.mean([r["seconds"] for r in mine])) if mine else None,
            ]
        )
    return Table(
        f"Audit: success at {cfg.budget} passes per target",
        ["method", "found", "success rate", "passes per success", "seconds per target"],
        [[fmt(v, 1) if isinstance(v, float) and v > 1 else fmt(v) for v in row] for row in values],
        note="Success: greedy decoding of the found input reproduces the target exactly (checked "
        "after the search). Every method had the same budget of forward + backward passes.",
    )


def run_audits(config_path: Path, out: Path) -> Path:
    """Run every method on every target of an audit config; write audit.jsonl and a report."""
    backbone_cfg, cfg = load_audit(config_path)
    from shiftlab.lm.audit import run_audit
    from shiftlab.models import load_backbone

    check_output(out, "audit.jsonl", "audit")
    backbone = load_backbone(backbone_cfg, torch.device("cpu"))
    model, tokenizer = backbone.featurizer.model, backbone.featurizer.tokenizer
    targets = list(cfg.targets)
    if cfg.random_targets and cfg.random_targets_from == "words":
        targets += draw_targets(tokenizer, cfg.random_targets, cfg.target_tokens, cfg.seed)
    elif cfg.random_targets:
        targets += continuation_targets(
            model, tokenizer, cfg.random_targets, cfg.target_tokens, cfg.input_length, cfg.seed
        )
    for target in targets:
        n = len(tokenizer(target, add_special_tokens=False)["input_ids"])
        if n > cfg.max_output_tokens:
            raise ConfigError(
                f"audit target {target!r} is {n} tokens, longer than max_output_tokens "
                f"({cfg.max_output_tokens})"
            )
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, target in enumerate(targets):
        for method in cfg.methods:
            result = run_audit(
                method,
                model,
                tokenizer,
                target,
                input_length=cfg.input_length,
                prefix=cfg.prefix,
                budget=cfg.budget,
                seed=cfg.seed + i,
                options=cfg.options.get(method),
            )
            rows.append(result.to_dict())
            mark = "found" if result.success else "not found"
            log(f"{method} {target!r}: {mark} in {result.passes} passes ({result.seconds:.1f} s)")
    write_atomic(out / "audit.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    table = summary_table(rows, cfg)
    write_atomic(out / "report.md", f"# shiftlab audit: {out.name}\n\n{table.to_markdown()}")
    page = f"<!doctype html><meta charset='utf-8'><title>{html.escape(out.name)}</title>"
    write_atomic(out / "report.html", page + table.to_html())
    return out / "report.html"

"""Membership scores: shiftlab's one pass per batch against a plain loop of one pass per score,
and, from a finished run, each unlearning method's time against retraining's.

1. **Scoring texts.** Every registered membership score (``loss``, ``zlib``, ``reference``,
   ``min_k``, ``min_k_pp``; k 0.2) of ``--texts`` fictitious biographies
   (``shiftlab.data.fictitious_facts``: seeded people, one whole biography each), by
   ``shiftlab.membership.score_all`` (one forward pass of the target model per batch of 8 with
   the vocabulary statistics, one of the reference model, every score read from those) against
   a plain loop in the style of ``zjysteven/mink-plus-plus`` ``run.py`` / ``run_ref.py``: for
   each text and each score, its own forward pass of the text alone (``model(ids,
   labels=ids)`` for loss, zlib and reference, plus the reference model's pass; the logits'
   log-softmax for Min-K% and Min-K%++): 6 forward passes per text. The reference model is a
   copy of the target with seeded noise on its weights (1% of each weight tensor's standard
   deviation): the size, tokenizer and cost of a real reference, and scores that are not all
   zero; ``--reference NAME`` loads a real one with ``shiftlab.lm.load`` instead. The texts are
   cut into ``--chunks`` parts and the two ways alternate on each part, ``--repeats`` times;
   each way's total over all texts is kept, and the best repeat compared. The scores must
   agree: one ``max |diff|`` line per score. Prints ``ratio=`` (shiftlab texts/s over plain
   texts/s) last.
2. **Unlearning time** (``--from-run RUN_DIR``, nothing is run): reads the run's
   ``records.jsonl`` and prints, for every unlearning entry (records of role ``unlearn``), its
   method, its ``seconds`` (the wall time of the unlearning itself, or of retraining the recipe
   on the retain set) and that over retraining's seconds of the same seed. The original model's
   entry (a summary, no training) is left out.

Model: the real ``smollm2-135m-instruct`` backbone, or with ``--tiny`` a random 2-layer, 32-wide
Llama with SmolLM2's tokenizer (a check that the script runs; its speeds mean little).

    python benchmarks/membership.py [--texts 500] [--chunks 5] [--repeats 1] [--tiny]
    python benchmarks/membership.py --from-run runs/unlearn_facts
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import tempfile
import time
import zlib
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from shiftlab.data.fictitious_facts import PeopleOptions, biography, generate_people
from shiftlab.membership import MEMBERSHIP, score_all

METHODS = ("loss", "zlib", "reference", "min_k", "min_k_pp")


def biographies(n: int) -> list[str]:
    """``n`` whole biographies of seeded fictitious people."""
    people = generate_people(PeopleOptions(forget=1, retain=max(1, n - 2), holdout=1), seed=0)
    return [biography(p) for p in people[:n]]


def perturbed_copy(model: torch.nn.Module, scale: float = 0.01) -> torch.nn.Module:
    """A copy of ``model`` with seeded Gaussian noise of ``scale`` times each weight tensor's
    standard deviation: a stand-in reference model of the same size and tokenizer."""
    reference = copy.deepcopy(model).eval()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in reference.parameters():
            if p.numel() > 1:
                p.add_(torch.randn(p.shape, generator=generator) * (scale * float(p.std())))
    return reference


# 1. Scoring ---------------------------------------------------------------------------------


def shiftlab_scores(model, tokenizer, reference, texts) -> tuple[float, dict[str, np.ndarray]]:
    """Seconds and every score of ``texts`` by score_all (one pass per batch)."""
    start = time.perf_counter()
    scores = score_all(model, tokenizer, texts, METHODS, k=0.2, reference=reference)
    return time.perf_counter() - start, scores


def lowest_k_mean(values: torch.Tensor, k: float) -> float:
    """Mean of the int(len * k) lowest values (at least one: mink-plus-plus averages an empty
    slice, NaN, where int(len * k) is 0)."""
    count = max(1, int(len(values) * k))
    return float(np.sort(values.double().numpy())[:count].mean())


@torch.inference_mode()
def plain_scores(model, tokenizer, reference, texts, k: float = 0.2):
    """Seconds and every score of ``texts``, one forward pass per text and score."""
    ref_model, ref_tokenizer = reference
    scores = {name: np.zeros(len(texts)) for name in METHODS}
    start = time.perf_counter()
    for i, text in enumerate(texts):
        ids = torch.tensor([tokenizer(text)["input_ids"]])
        # loss (run.py lines 82-84, 91): ll = -loss
        scores["loss"][i] = -float(model(input_ids=ids, labels=ids).loss)
        # zlib (run.py line 92): ll / zlib length
        ll = -float(model(input_ids=ids, labels=ids).loss)
        scores["zlib"][i] = ll / len(zlib.compress(text.encode("utf-8")))
        # reference (run_ref.py lines 91-98, 111): ll - ll_ref
        ll = -float(model(input_ids=ids, labels=ids).loss)
        ref_ids = torch.tensor([ref_tokenizer(text)["input_ids"]])
        ll_ref = -float(ref_model(input_ids=ref_ids, labels=ref_ids).loss)
        scores["reference"][i] = ll - ll_ref
        # min_k (run.py lines 95-106)
        targets = ids[0, 1:].unsqueeze(-1)
        log_probs = F.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
        token_log_probs = log_probs.gather(dim=-1, index=targets).squeeze(-1)
        scores["min_k"][i] = lowest_k_mean(token_log_probs, k)
        # min_k_pp (run.py lines 95-100, 108-113)
        logits = model(input_ids=ids).logits[0, :-1].float()
        probs, log_probs = F.softmax(logits, dim=-1), F.log_softmax(logits, dim=-1)
        token_log_probs = log_probs.gather(dim=-1, index=targets).squeeze(-1)
        mu = (probs * log_probs).sum(-1)
        sigma = (probs * torch.square(log_probs)).sum(-1) - torch.square(mu)
        scores["min_k_pp"][i] = lowest_k_mean((token_log_probs - mu) / sigma.sqrt(), k)
    return time.perf_counter() - start, scores


def scoring(model, tokenizer, reference, texts, chunks: int, repeats: int) -> float:
    """Alternate the two ways on each chunk of texts; print speeds and agreement; return
    shiftlab texts/s over plain texts/s (best repeat of each)."""
    size = math.ceil(len(texts) / chunks)
    parts = [texts[i : i + size] for i in range(0, len(texts), size)]
    shiftlab_scores(model, tokenizer, reference, texts[:2])  # warm up
    plain_scores(model, tokenizer, reference, texts[:2])
    ours, plain = [], []
    for _ in range(repeats):
        ours_s = plain_s = 0.0
        ours_scores: dict[str, list] = defaultdict(list)
        plain_values: dict[str, list] = defaultdict(list)
        for part in parts:
            seconds, values = plain_scores(model, tokenizer, reference, part)
            plain_s += seconds
            for name in METHODS:
                plain_values[name].append(values[name])
            seconds, values = shiftlab_scores(model, tokenizer, reference, part)
            ours_s += seconds
            for name in METHODS:
                ours_scores[name].append(values[name])
        ours.append(len(texts) / ours_s)
        plain.append(len(texts) / plain_s)
        print(f"plain {plain[-1]:.2f} texts/s, shiftlab {ours[-1]:.2f} texts/s")
    for name in METHODS:
        a, b = np.concatenate(ours_scores[name]), np.concatenate(plain_values[name])
        bad = int((~np.isfinite(b)).sum())
        note = f" ({bad} plain scores not finite)" if bad else ""
        print(f"{name}: max |diff| {float(np.nanmax(np.abs(a - b))):.2e}{note}")
    print(
        f"texts={len(texts)} chunks={len(parts)} threads={torch.get_num_threads()} "
        f"forward passes: plain 6 per text, shiftlab 2 per batch of 8"
    )
    print(f"best: plain {max(plain):.2f} texts/s, shiftlab {max(ours):.2f} texts/s")
    return max(ours) / max(plain)


# 2. Unlearning time -------------------------------------------------------------------------


def from_run(run_dir: Path) -> None:
    """One line per unlearning entry: its method, seconds, and seconds over retraining's."""
    path = run_dir / "records.jsonl"
    if not path.is_file():
        raise SystemExit(f"no records.jsonl in {run_dir}")
    by_seed: dict[int, list[dict]] = defaultdict(list)
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line) if line.strip() else {}
        method = record.get("unlearn", {}).get("method")
        if record.get("role") == "unlearn" and "seconds" in record and method != "original":
            by_seed[record.get("seed", 0)].append(record)
    if not by_seed:
        raise SystemExit(f"{path} has no unlearning records (role 'unlearn')")
    for seed, records in sorted(by_seed.items()):
        retrain = [r["seconds"] for r in records if r["unlearn"]["method"] == "retrain"]
        n_forget = records[0]["unlearn"].get("n_forget")
        print(f"{path} seed={seed}: {n_forget} examples forgotten")
        if not retrain:
            print("no retrain entry: seconds / retrain is n/a")
        for r in records:
            method, seconds = r["unlearn"]["method"], float(r["seconds"])
            ratio = f"{seconds / retrain[0]:.3f}" if retrain and retrain[0] > 0 else "n/a"
            print(f"{method} ({r['model']}): seconds={seconds:.1f} vs_retrain={ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=500)
    parser.add_argument("--chunks", type=int, default=5, help="parts the two ways alternate on")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--reference", default=None, help="a reference model for shiftlab.lm.load")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--tiny", action="store_true", help="a tiny random Llama, not SmolLM2")
    parser.add_argument("--from-run", type=Path, default=None, help="a finished run directory")
    args = parser.parse_args()
    if args.from_run is not None:
        from_run(args.from_run)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    assert set(METHODS) == set(MEMBERSHIP.names()), MEMBERSHIP.names()

    sys.path.insert(0, str(Path(__file__).parent))
    from lm import load_lm  # the backbone loader, beside this script

    texts = biographies(args.texts)
    with tempfile.TemporaryDirectory() as tmp:
        scorer = load_lm(args.tiny, Path(tmp)).featurizer
        model, tokenizer = scorer.model.eval(), scorer.tokenizer
        if args.reference:
            from shiftlab.lm.load import load

            reference = load(args.reference)
        else:
            reference = (perturbed_copy(model), tokenizer)
        tokens = [len(tokenizer(t)["input_ids"]) for t in texts]
        print(f"{len(texts)} biographies, {min(tokens)}-{max(tokens)} tokens")
        ratio = scoring(model, tokenizer, reference, texts, args.chunks, args.repeats)
    print(f"ratio={ratio:.3f}")


if __name__ == "__main__":
    main()

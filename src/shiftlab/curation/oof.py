"""Out-of-sample predicted probabilities by stratified K-fold cross-validation.

Confident learning (Northcutt, Jiang and Chuang, JAIR 2021, arXiv 1911.00068) wants, for every
training example, class probabilities from a model that never saw it. Follows cleanlab's
``estimate_confident_joint_and_cv_pred_proba`` (``cleanlab/count.py``: 5 folds by default,
``StratifiedKFold(n_splits, shuffle=True, random_state=seed)`` split on the labels alone, each
held-out fold predicted by a fresh model trained on the other folds). Where cleanlab copies one
held-out example into a training fold that lacks its class, this module refuses: every class
needs at least ``folds`` examples.

:func:`out_of_sample_probabilities` runs shiftlab's linear probe
(:func:`shiftlab.finetune.linear_probe.fit_linear_probe`: scalar mean/std normalisation of the
training fold, L-BFGS logistic regression) at one fixed ``C`` chosen beforehand on ID val;
:func:`out_of_sample_generic` runs any recipe given as a ``fit_predict`` closure.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from sklearn.model_selection import StratifiedKFold

from shiftlab.errors import ConfigError, DataError
from shiftlab.finetune.linear_probe import LinearProbeOptions, fit_linear_probe

FitPredict = Callable[[np.ndarray, np.ndarray], np.ndarray]


def stratified_folds(
    labels: np.ndarray, num_classes: int, *, folds: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (train index, held-out index) pairs of a seeded, shuffled stratified K-fold.

    Args:
        labels: (N,) class indices in ``[0, num_classes)``.

    Raises:
        ConfigError: ``folds`` < 2.
        DataError: labels out of range, or a class has fewer examples than ``folds``.
    """
    labels = np.asarray(labels)
    if folds < 2:
        raise ConfigError(f"out-of-sample probabilities need folds >= 2, got {folds}")
    if (
        labels.ndim != 1
        or not np.issubdtype(labels.dtype, np.integer)
        or (labels.size and (labels.min() < 0 or labels.max() >= num_classes))
    ):
        raise DataError(f"labels must be a 1-D array of class indices in [0, {num_classes})")
    if labels.size == 0:
        raise DataError("out-of-sample probabilities need at least one example")
    counts = np.bincount(labels, minlength=num_classes)
    smallest = int(np.argmin(np.where(counts > 0, counts, np.iinfo(np.int64).max)))
    if counts[smallest] < folds:
        fix = (
            f"lower folds to {counts[smallest]}"
            if counts[smallest] >= 2
            else "a class needs at least 2 examples to be cross-validated"
        )
        raise DataError(
            f"class {smallest} has {counts[smallest]} examples, fewer than folds={folds}; {fix}"
        )
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros((len(labels), 1)), labels))


def out_of_sample_generic(
    fit_predict: FitPredict, labels: np.ndarray, num_classes: int, *, folds: int = 5, seed: int
) -> np.ndarray:
    """Cross-validated probabilities of any training recipe.

    Args:
        fit_predict: ``fit_predict(train_index (M,), held_out_index (H,))`` trains on the
            examples of ``train_index`` and returns their held-out probabilities (H, K).
        labels: (N,) class indices.
        num_classes: K.
        folds: number of folds (cleanlab's default 5).
        seed: seeds the fold assignment.

    Returns:
        (N, K) probabilities; row i comes from the model of the fold that held i out.
    """
    probs = np.full((len(labels), num_classes), np.nan)
    for train_index, held_index in stratified_folds(labels, num_classes, folds=folds, seed=seed):
        fold = np.asarray(fit_predict(train_index, held_index), dtype=np.float64)
        if fold.shape != (len(held_index), num_classes):
            raise DataError(
                f"fit_predict returned shape {fold.shape}, expected "
                f"({len(held_index)}, {num_classes}) for the held-out fold"
            )
        if not np.isfinite(fold).all():
            raise DataError("fit_predict returned probabilities that are NaN or infinite")
        probs[held_index] = fold
    return probs


def out_of_sample_probabilities(
    features: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    *,
    folds: int = 5,
    seed: int,
    c: float,
    max_iter: int = 200,
) -> np.ndarray:
    """Cross-validated probabilities of the linear probe at a fixed regularisation ``c``.

    Each fold's probe is :func:`fit_linear_probe` with a one-point sweep at ``c`` (the same
    normalisation, solver, ``max_iter`` and seed), fitted on the other folds. A class absent
    from the whole set gets probability 0 (the probe's zero row would otherwise give it logit 0).

    Args:
        features: (N, D) features.
        labels: (N,) class indices.
        num_classes: K.
        folds: number of folds.
        seed: seeds the folds and the solver.
        c: inverse regularisation strength, chosen beforehand (e.g. the probe's best on ID val).
        max_iter: L-BFGS iterations per fit (the probe's default 200).

    Returns:
        (N, K) probabilities, each row from the probe that did not see that example.
    """
    if not c > 0 or not math.isfinite(c):
        raise ConfigError(f"the probe's C must be a positive number, got {c}")
    (probs,) = out_of_sample_sweep(
        features, labels, num_classes, [c], folds=folds, seed=seed, max_iter=max_iter
    )
    return probs


def out_of_sample_sweep(
    features: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    cs: list[float],
    *,
    folds: int = 5,
    seed: int,
    max_iter: int = 200,
) -> list[np.ndarray]:
    """Cross-validated probabilities of the linear probe at each of ``cs`` (log-spaced,
    ascending): one warm-started sweep per fold, as :func:`fit_linear_probe` sweeps.

    Returns:
        one (N, K) array per C, each row from the probes that did not see that example.
    """
    features, labels = np.asarray(features), np.asarray(labels)
    if features.ndim != 2 or len(features) != len(labels):
        raise DataError(
            f"features must be (N, D) with N = {len(labels)} labels, got {features.shape}"
        )
    if not cs or any(not c > 0 or not math.isfinite(c) for c in cs):
        raise ConfigError(f"the probe's C must be a positive number, got {cs}")
    low, high = math.log10(cs[0]), math.log10(cs[-1])
    cfg = LinearProbeOptions(
        c_min_exp=low, c_max_exp=high, num_c=len(cs), max_iter=max_iter, trend_points=0
    )
    absent = np.bincount(labels, minlength=num_classes) == 0
    probs = [np.full((len(labels), num_classes), np.nan) for _ in cs]
    for train_index, held_index in stratified_folds(labels, num_classes, folds=folds, seed=seed):
        held_x = features[held_index]
        probe = fit_linear_probe(
            features[train_index], labels[train_index], held_x, labels[held_index],
            num_classes, cfg, seed,
        )  # fmt: skip
        for i, (_, _, weight, bias) in enumerate(probe.sweep):
            logits = held_x.astype(np.float64) @ weight.double().numpy().T
            logits += bias.double().numpy()
            logits[:, absent] = -np.inf
            logits -= logits.max(axis=1, keepdims=True)
            exp = np.exp(logits)
            probs[i][held_index] = exp / exp.sum(axis=1, keepdims=True)
    return probs

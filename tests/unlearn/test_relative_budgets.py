"""Unlearning budgets relative to the original training, as the references have them in effect:
a classifier method's steps are a fraction of the original's and its learning rate a multiple of
the original recipe's (with its optimiser); a language model's passes over the forget set are a
multiple of the original's epochs, at its lr and batch. Absolute options apply outside a run or
when the relative setting is null, and a user's absolute option that a relative one replaces is
named in a warning."""

from __future__ import annotations

import dataclasses

import pytest

from shiftlab.finetune.full_ft import FullFTOptions
from shiftlab.registry import UNLEARN
from shiftlab.unlearn.base import Original, overridden, relative, steps_per_epoch


def test_the_original_training_counts_its_steps():
    original = Original.of(FullFTOptions(epochs=2, batch_size=32, lr=3e-5), n=600)
    assert original.steps == 2 * steps_per_epoch(600, 32) == 38
    assert (original.lr, original.optimizer, original.weight_decay) == (3e-5, "adamw", 0.1)
    assert Original.of(None, 600) is None  # a recipe that does not train with the trainer


def test_a_classifier_method_takes_a_fraction_of_the_original_steps_at_its_lr():
    original = Original.of(FullFTOptions(epochs=2, batch_size=32, lr=3e-5), n=600)
    options = UNLEARN["finetune_retain"].options()  # SCRUB's finetune: 0.35 of the steps, lr x1
    assert (options.budget, options.lr_scale) == (0.35, 1.0)
    resolved = relative(options, original, n=400)  # walks the retain set, batch 128
    assert resolved.epochs == round(0.35 * 38 / steps_per_epoch(400, 128))
    assert (resolved.lr, resolved.optimizer, resolved.momentum) == (3e-5, "adamw", 0.9)
    assert resolved.weight_decay == 0.1 and resolved.batch_size == 128  # the method's batch
    absolute = dataclasses.replace(options, budget=None, lr_scale=None)
    assert relative(absolute, original, 400) == absolute  # null: the reference's own values
    assert relative(options, None, 400) is options  # outside a run: as given


def test_scrub_takes_its_budget_in_epochs_of_both_passes():
    original = Original.of(FullFTOptions(epochs=10, batch_size=32, lr=3e-5), n=600)
    options = UNLEARN["scrub"].options()
    resolved = options.relative(original, forget=200, retain=400)
    per_epoch = steps_per_epoch(400, 128) + steps_per_epoch(200, 32)
    assert resolved.epochs == max(1, round(0.054 * original.steps / per_epoch))
    assert resolved.lr == pytest.approx(0.05 * 3e-5) and resolved.optimizer == "adamw"
    assert resolved.msteps <= resolved.epochs


def test_a_language_model_method_repeats_the_original_epochs_on_the_forget_set():
    original = Original.of(FullFTOptions(epochs=3, batch_size=4, lr=1e-4), n=12)
    npo = relative(UNLEARN["npo"].options(), original, n=4)
    assert (npo.epochs, npo.lr, npo.batch_size) == (6, 1e-4, 4)  # NPO: 10 epochs after 5
    ga = relative(UNLEARN["gradient_ascent"].options().causal_lm, original, n=4)
    assert (ga.epochs, ga.lr) == (3, 1e-4)  # TOFU: as many epochs as the fine-tune


def test_an_absolute_option_a_relative_one_replaces_is_named():
    options = UNLEARN["finetune_retain"].options(epochs=2)
    assert overridden(options) == ["epochs (budget)"]
    assert overridden(UNLEARN["finetune_retain"].options(epochs=2, budget=None)) == []
    nested = UNLEARN["gradient_ascent"].options()
    nested.classifier.lr = 0.5
    assert overridden(nested) == ["classifier.lr (lr_scale)"]

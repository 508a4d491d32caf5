"""JTT's error set on a real (tiny) run: the online set is what the final identification
epoch's training pass got wrong."""

import dataclasses

import numpy as np
import torch.nn.functional as F
from recipe_helpers import default_options, run_recipe

from shiftlab.finetune.groups import group_train
from shiftlab.finetune.jtt import error_set


def jtt_options(**changes):
    options = default_options("jtt")
    return dataclasses.replace(
        options, head_only=True, lr=0.5, epochs=1, final_epoch=1, up_weight=3, **changes
    )


def test_online_errors_are_those_of_the_final_epochs_training_pass(
    make_context, tiny_benchmark, tiny_backbone
):
    ctx = make_context(tiny_benchmark, tiny_backbone, name="jtt")
    cfg = jtt_options()
    errors = error_set(ctx, cfg)
    # Replay stage one (same seed, same plan) and log every prediction with its epoch.
    seen = []
    epoch = {"now": 0}

    def logging_objective(logits, features, batch, groups):
        seen.append((epoch["now"], batch.index.copy(), logits.argmax(1).numpy()))
        return F.cross_entropy(logits, batch.labels)

    first = dataclasses.replace(cfg, epochs=2, select="last", balanced=False)
    group_train(
        ctx,
        first,
        logging_objective,
        description="replay",
        on_epoch_end=lambda e: epoch.update(now=e + 1),
    )
    labels = tiny_benchmark.train.labels

    def wrong_in(epoch_index):
        return {
            int(i)
            for e, index, predicted in seen
            if e == epoch_index
            for i, p in zip(index, predicted, strict=True)
            if p != labels[i]
        }

    wrong = sorted(wrong_in(1))
    assert errors.tolist() == wrong and len(wrong) > 0
    assert set(wrong) != wrong_in(0)  # the epoch matters: the model moved between passes


def test_eval_error_set_and_the_recorded_parameters(make_context, tiny_benchmark, tiny_backbone):
    options = jtt_options(error_set="eval")
    (predictor,), ctx = run_recipe(make_context, tiny_benchmark, tiny_backbone, "jtt", options)
    eval_errors = error_set(ctx, options)
    assert predictor.params["error_set"] == "eval"
    assert predictor.params["error_set_size"] == len(eval_errors)
    assert predictor.params["final_epoch"] == 1 and predictor.params["up_weight"] == 3


def test_defaults_are_the_reference_celeba_run():
    options = default_options("jtt").__class__()
    assert (options.lr, options.weight_decay, options.batch_size, options.epochs) == (
        1e-5,
        0.1,
        64,
        50,
    )
    assert (options.final_epoch, options.up_weight, options.error_set) == (1, 50, "online")
    assert options.optimizer == "sgd" and options.momentum == 0.9
    assert np.isclose(default_options("group_dro").__class__().weight_decay, 5e-5)

import torch
from recipe_helpers import run_recipe

from shiftlab.evaluate.calibration import fit_temperature
from shiftlab.models.combination import CalibratedEnsemble


def test_average_rule_is_the_mean_of_calibrated_probabilities():
    z1 = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    z2 = torch.tensor([[0.0, 3.0], [1.0, 0.0]])
    ensemble = CalibratedEnsemble([torch.nn.Identity(), torch.nn.Identity()], [2.0, 0.5])
    expected = (torch.softmax(z1 / 2.0, 1) + torch.softmax(z2 / 0.5, 1)) / 2
    torch.testing.assert_close(ensemble.combine([z1, z2]).exp(), expected)


def test_confidence_rule_takes_the_more_confident_member_per_example():
    z1 = torch.tensor([[4.0, 0.0], [0.0, 0.5]])
    z2 = torch.tensor([[0.0, 1.0], [3.0, 0.0]])
    ensemble = CalibratedEnsemble([torch.nn.Identity()] * 2, [1.0, 1.0], "confidence")
    combined = ensemble.combine([z1, z2])
    torch.testing.assert_close(combined[0], torch.log_softmax(z1[0], 0))  # member 1 surer
    torch.testing.assert_close(combined[1], torch.log_softmax(z2[1], 0))  # member 2 surer


def test_each_member_is_calibrated_on_id_val_alone(make_context, tiny_benchmark, tiny_backbone):
    (ensemble,), ctx = run_recipe(
        make_context, tiny_benchmark, tiny_backbone, "calibrated_ensemble"
    )
    assert ensemble.params["members"] == ["zero_shot", "full_ft"]
    val = tiny_benchmark.val
    for member, t in zip(ensemble.model.members, ensemble.model.temperatures, strict=True):
        assert t == fit_temperature(ctx.logits(member, val), val.labels)
    for split in tiny_benchmark.eval_splits():
        probs = [
            torch.softmax(ctx.logits(m, split) / t, 1)
            for m, t in zip(ensemble.model.members, ensemble.model.temperatures, strict=True)
        ]
        torch.testing.assert_close(ctx.logits(ensemble.model, split).exp(), sum(probs) / 2)

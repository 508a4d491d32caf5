import numpy as np
import pytest
import torch

from shiftlab.evaluate.calibration import fit_temperature, temperature_scaled
from shiftlab.evaluate.metrics import expected_calibration_error, reliability_bins
from shiftlab.evaluate.records import predictor_logits
from shiftlab.models import Predictor
from shiftlab.models.combination import TemperatureScaled


@pytest.mark.parametrize("true_temperature", [0.5, 1.0, 2.5])
def test_recovers_a_known_temperature(true_temperature):
    generator = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(20000, 5, generator=generator)
    # labels drawn from softmax(logits / T*): the logits are miscalibrated by exactly T*
    labels = torch.multinomial(torch.softmax(logits / true_temperature, 1), 1, generator=generator)
    fitted = fit_temperature(logits, labels.squeeze(1))
    assert fitted == pytest.approx(true_temperature, rel=0.05)


def test_scaling_lowers_the_ece_of_overconfident_logits():
    generator = torch.Generator().manual_seed(1)
    logits = 3 * torch.randn(5000, 4, generator=generator)
    labels = torch.multinomial(torch.softmax(logits / 3.0, 1), 1, generator=generator).squeeze(1)
    t = fit_temperature(logits, labels)
    before = expected_calibration_error(torch.softmax(logits, 1).numpy(), labels.numpy())
    after = expected_calibration_error(torch.softmax(logits / t, 1).numpy(), labels.numpy())
    assert after < before / 3


def test_reliability_bins_count_every_example():
    probs = np.array([[0.1, 0.9], [0.2, 0.8], [0.6, 0.4], [0.45, 0.55]])
    bins = reliability_bins(probs, np.array([1, 0, 0, 1]), 15)
    assert sum(bins["count"]) == 4
    assert bins["accuracy"][13] == 1.0 and bins["confidence"][13] == pytest.approx(0.9)
    assert bins["accuracy"][0] is None  # empty bin


def test_temperature_scaled_predictor_keeps_predictions(
    make_context, tiny_benchmark, tiny_backbone
):
    ctx = make_context(tiny_benchmark, tiny_backbone)
    base = Predictor("zero_shot", "zero_shot", ctx.head_only(ctx.zero_shot_head()))
    scaled = temperature_scaled(base, tiny_benchmark.val, ctx.cache)
    assert scaled.name == "zero_shot+ts" and scaled.recipe == "zero_shot"
    assert scaled.info == {"calibrated": True}
    assert isinstance(scaled.model, TemperatureScaled)
    t = scaled.model.temperature
    assert scaled.params["temperature"] == round(t, 4)
    val_logits = predictor_logits(base, tiny_benchmark.val, ctx.cache)
    assert t == pytest.approx(fit_temperature(val_logits, tiny_benchmark.val.labels))
    for split in tiny_benchmark.eval_splits():
        raw = predictor_logits(base, split, ctx.cache)
        torch.testing.assert_close(predictor_logits(scaled, split, ctx.cache), raw / t)

import math

import numpy as np
import pytest

from shiftlab.evaluate.robustness import effective_robustness, fit_trend, inverse_link, link


@pytest.mark.parametrize("kind", ["probit", "logit"])
def test_points_on_a_line_have_zero_effective_robustness(kind):
    ids = np.array([0.55, 0.65, 0.75, 0.85, 0.95])
    oods = inverse_link(0.8 * link(ids, kind) - 0.3, kind)  # exactly on a line in link space
    trend = fit_trend(ids, oods, kind)
    assert trend.slope == pytest.approx(0.8) and trend.intercept == pytest.approx(-0.3)
    for i, o in zip(ids, oods, strict=True):
        assert effective_robustness(i, o, trend) == pytest.approx(0.0, abs=1e-12)


def test_points_above_the_trend_are_positive():
    trend = fit_trend([0.6, 0.8], [0.5, 0.6], "probit")
    assert effective_robustness(0.7, 0.65, trend) > 0
    assert effective_robustness(0.7, 0.45, trend) < 0


def test_probit_is_the_inverse_normal_cdf():
    assert link(0.5, "probit") == pytest.approx(0.0)
    assert link(0.975, "probit") == pytest.approx(1.959964, abs=1e-6)
    assert inverse_link(link(0.3, "logit"), "logit") == pytest.approx(0.3)


def test_no_trend_from_one_id_accuracy():
    assert fit_trend([0.7, 0.7], [0.5, 0.6]) is None


def test_effective_robustness_is_the_vertical_distance_to_the_logit_line_of_baselines():
    """Four standard models on the line logit(OOD) = 0.5 logit(ID) - 0.2; zero-shot above it.
    Its effective robustness is its height above that line, and it is not part of the fit."""
    from shiftlab.report.summary import ModelRow, add_effective_robustness

    sigmoid = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    rows = [
        ModelRow(f"m{i}", "full_ft", {}, None, a, sigmoid(0.5 * logit(a) - 0.2), standard=True)
        for i, a in enumerate([0.6, 0.7, 0.8, 0.9])
    ]
    rows.append(ModelRow("zero_shot", "zero_shot", {}, None, 0.7, 0.72))
    trend = add_effective_robustness(rows, None, "logit")
    assert trend.kind == "logit" and trend.points == 4 and trend.reliable
    assert trend.slope == pytest.approx(0.5) and trend.intercept == pytest.approx(-0.2)
    assert trend.r2 == pytest.approx(1.0)
    expected = 0.72 - sigmoid(0.5 * logit(0.7) - 0.2)
    assert rows[-1].effective_robustness == pytest.approx(expected, abs=1e-12)
    assert all(r.effective_robustness == pytest.approx(0, abs=1e-12) for r in rows[:4])


def test_zero_shot_and_interventions_are_never_default_baselines():
    from shiftlab.report.summary import ModelRow, is_baseline

    for recipe in ("zero_shot", "flyp", "wise_ft", "calibrated_ensemble", "lp_ft", "group_dro"):
        assert not is_baseline(ModelRow(recipe, recipe, {}, None, 0.7, 0.6), None)
    assert is_baseline(ModelRow("zero_shot", "zero_shot", {}, None, 0.7, 0.6), ["zero_shot"])
    twin = ModelRow("full_ft+ts", "full_ft", {}, None, 0.7, 0.6, standard=True, calibrated=True)
    assert not is_baseline(twin, None)


def test_r2_measures_scatter_and_three_points_are_unreliable():
    trend = fit_trend([0.6, 0.7, 0.8], [0.5, 0.65, 0.6], "logit")
    assert trend.points == 3 and not trend.reliable and 0 < trend.r2 < 1

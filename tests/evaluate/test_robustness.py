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

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from shiftlab.curation.oof import out_of_sample_generic, out_of_sample_probabilities
from shiftlab.errors import DataError


def _blobs(n_per_class: int, dim: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 3, size=(classes, dim))
    labels = np.repeat(np.arange(classes), n_per_class)
    return means[labels] + rng.normal(size=(len(labels), dim)), labels


def test_every_row_comes_from_the_fold_that_held_it_out():
    labels = np.repeat(np.arange(3), [10, 12, 13])
    calls = []

    def fit_predict(train_index: np.ndarray, held_index: np.ndarray) -> np.ndarray:
        assert not set(train_index) & set(held_index)
        assert len(train_index) + len(held_index) == len(labels)
        calls.append(held_index)
        probs = np.zeros((len(held_index), 5))
        probs[:, len(calls) - 1] = 1.0  # fold number as the predicted class
        return probs

    probs = out_of_sample_generic(fit_predict, labels, 5, folds=5, seed=0)
    assert len(calls) == 5
    assert sorted(np.concatenate(calls).tolist()) == list(range(len(labels)))
    for fold, held in enumerate(calls):
        assert (probs[held].argmax(axis=1) == fold).all()
    per_fold = np.array([np.bincount(labels[held], minlength=3) for held in calls])
    assert (per_fold.max(axis=0) - per_fold.min(axis=0) <= 1).all()  # stratified


def test_linear_probe_folds_match_sklearn_on_scalar_normalised_features():
    x, y = _blobs(30, 6, 3, seed=1)
    c, seed = 0.05, 3
    probs = out_of_sample_probabilities(x, y, 3, folds=4, seed=seed, c=c)
    expected = np.zeros_like(probs)
    for train, held in StratifiedKFold(4, shuffle=True, random_state=seed).split(x, y):
        mean, std = x[train].mean(), x[train].std()
        model = LogisticRegression(C=c, max_iter=200, random_state=seed)
        model.fit((x[train] - mean) / std, y[train])
        expected[held] = model.predict_proba((x[held] - mean) / std)
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)


def test_a_mislabelled_example_is_not_memorised_out_of_sample():
    # 60 dims > 40 examples: a weakly regularised probe fits any labelling in sample.
    x, y = _blobs(20, 60, 2, seed=2)
    noisy = y.copy()
    noisy[0] = 1  # an example of class 0 labelled 1
    mean, std = x.mean(), x.std()
    in_sample = LogisticRegression(C=1e4, max_iter=1000).fit((x - mean) / std, noisy)
    assert in_sample.predict_proba((x[:1] - mean) / std)[0, 1] > 0.9
    probs = out_of_sample_probabilities(x, noisy, 2, folds=5, seed=0, c=1e4, max_iter=1000)
    assert probs[0, 1] < 0.1
    assert (probs.argmax(axis=1) == y).mean() > 0.95


def test_a_class_absent_from_the_set_gets_probability_zero():
    x, y = _blobs(10, 4, 3, seed=3)
    probs = out_of_sample_probabilities(x, y, 4, folds=5, seed=0, c=1.0)
    assert probs.shape == (30, 4)
    assert (probs[:, 3] == 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)


def test_a_class_smaller_than_folds_is_a_one_line_error():
    labels = np.array([0] * 10 + [1] * 10 + [2] * 3)
    with pytest.raises(
        DataError, match=r"class 2 has 3 examples, fewer than folds=5; lower folds to 3"
    ):
        out_of_sample_generic(lambda a, b: None, labels, 3, folds=5, seed=0)


def test_fit_predict_of_the_wrong_shape_is_refused():
    labels = np.repeat(np.arange(2), 5)
    with pytest.raises(DataError, match="expected"):
        out_of_sample_generic(lambda a, b: np.zeros((len(b), 3)), labels, 2, folds=5, seed=0)

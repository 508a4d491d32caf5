import numpy as np
import torch

from shiftlab.curation import ForgettingTracker, forgetting_counts

# Correctness at 6 presentations (rows) of 5 examples (columns).
HISTORY = np.array(
    [
        # never  learned  forgot   always  alternating
        [0, 0, 1, 1, 0],
        [0, 0, 0, 1, 1],
        [0, 1, 1, 1, 0],
        [0, 1, 0, 1, 1],
        [0, 1, 0, 1, 0],
        [0, 1, 1, 1, 1],
    ],
    dtype=bool,
)


def test_counts_of_a_hand_made_history():
    # never learned: the number of presentations (6), as mtoneva/example_forgetting;
    # learned at presentation 3 and kept: 0; forgotten at presentations 2 and 4: 2;
    # always correct: 0; correct at 2, 4, 6, wrong at 3 and 5: 2.
    np.testing.assert_array_equal(forgetting_counts(HISTORY), [6, 0, 2, 0, 2])
    np.testing.assert_array_equal(
        forgetting_counts(HISTORY, never_learned=np.inf), [np.inf, 0, 2, 0, 2]
    )


def test_tracker_on_shuffled_minibatches_gives_the_same_counts():
    rng = np.random.default_rng(0)
    tracker = ForgettingTracker(5)
    for presentation in HISTORY:  # one epoch per row: every example once, in random batches
        order = rng.permutation(5)
        for batch in (order[:2], order[2:4], order[4:]):
            tracker.observe(torch.as_tensor(batch), torch.as_tensor(presentation[batch]))
    np.testing.assert_array_equal(tracker.counts(), forgetting_counts(HISTORY))
    np.testing.assert_array_equal(tracker.presentations, [6] * 5)


def test_a_repeated_index_is_presented_in_batch_order():
    tracker = ForgettingTracker(3)
    tracker.observe(np.array([2, 0, 2]), np.array([True, True, False]))
    tracker.observe(np.array([2, 2, 1]), np.array([True, False, True]))
    # example 2: correct, wrong, correct, wrong -> 2 events; example 0 once correct: 0;
    # example 1 seen once, correct: 0
    np.testing.assert_array_equal(tracker.counts(), [0, 0, 2])
    np.testing.assert_array_equal(tracker.presentations, [1, 1, 4])


def test_an_example_never_correct_or_never_seen_gets_the_most_presentations():
    tracker = ForgettingTracker(3)
    for _ in range(4):
        tracker.observe(np.array([0, 1]), np.array([True, False]))
    np.testing.assert_array_equal(tracker.counts(), [0, 4, 4])
    np.testing.assert_array_equal(tracker.counts(never_learned=np.inf), [0, np.inf, np.inf])

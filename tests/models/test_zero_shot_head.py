import torch
import torch.nn.functional as F

from shiftlab.models.zero_shot import zero_shot_head

VECTORS = {
    "a good one": torch.tensor([3.0, 0.0, 0.0]),
    "good!": torch.tensor([0.0, 4.0, 0.0]),
    "a bad one": torch.tensor([0.0, 0.0, 2.0]),
    "bad!": torch.tensor([1.0, 0.0, 1.0]),
}


def fake_encode(texts):
    return torch.stack([VECTORS[t] for t in texts])


def test_head_is_scaled_normalised_mean_of_normalised_prompts():
    head = zero_shot_head(fake_encode, ["good", "bad"], ["a {class_name} one", "{class_name}!"], 20)
    # good: mean((1,0,0), (0,1,0)) = (.5,.5,0) -> (1,1,0)/sqrt2
    # bad: mean((0,0,1), (1,0,1)/sqrt2) -> normalise
    bad = torch.tensor([0.0, 0.0, 1.0]) + torch.tensor([1.0, 0.0, 1.0]) / 2**0.5
    expected = torch.stack([torch.tensor([1.0, 1.0, 0.0]) / 2**0.5, F.normalize(bad, dim=0)])
    torch.testing.assert_close(head.weight, 20 * expected)
    assert torch.equal(head.bias, torch.zeros(2))

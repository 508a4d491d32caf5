import copy

import numpy as np
import torch

from shiftlab.features import encode
from shiftlab.models.fingerprint import weights_fingerprint
from shiftlab.models.text import load_text_encoder

TEXTS = ["a great movie", "the worst phone I ever bought, it broke within a week", "ok"]


def test_minilm_matches_sentence_transformers(minilm_path):
    """Mean pooling + L2 norm over the HF model is what sentence-transformers computes."""
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(minilm_path, device="cpu").encode(TEXTS)
    ours = encode(load_text_encoder(minilm_path), TEXTS, batch_size=2).numpy()
    np.testing.assert_allclose(ours, reference, atol=2e-5)


def test_minilm_embeddings_carry_meaning(minilm_path):
    encoder = load_text_encoder(minilm_path).eval()
    with torch.no_grad():
        e = encoder(["a wonderful film", "an excellent movie", "quarterly tax form"])
    assert torch.allclose(e.norm(dim=1), torch.ones(3), atol=1e-5)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.3


def test_padding_does_not_change_an_embedding(tiny_encoder_dir):
    encoder = load_text_encoder(str(tiny_encoder_dir)).eval()
    with torch.no_grad():
        alone = encoder(["ok"])
        batched = encoder(["ok", TEXTS[1]])
    torch.testing.assert_close(alone[0], batched[0], atol=1e-5, rtol=1e-5)


def test_encode_returns_input_order_despite_length_sorting(tiny_encoder_dir):
    encoder = load_text_encoder(str(tiny_encoder_dir)).eval()
    batched = encode(encoder, TEXTS, batch_size=2)
    with torch.no_grad():
        one_by_one = torch.cat([encoder([t]) for t in TEXTS])
    torch.testing.assert_close(batched, one_by_one, atol=1e-5, rtol=1e-5)


def test_fingerprint_tracks_weights_and_settings(tiny_encoder_dir):
    encoder = load_text_encoder(str(tiny_encoder_dir))
    twin = copy.deepcopy(encoder)
    assert twin.tokenizer is encoder.tokenizer  # shared, not copied
    assert weights_fingerprint(twin) == weights_fingerprint(encoder)
    with torch.no_grad():
        next(twin.parameters())[0, 0] += 1e-3
    assert weights_fingerprint(twin) != weights_fingerprint(encoder)
    shorter = load_text_encoder(str(tiny_encoder_dir), max_length=16)
    assert weights_fingerprint(shorter) != weights_fingerprint(encoder)

"""A language model's forget set never reaches a prompt it should not: with ``shots: k`` the
unlearned models are judged, and retraining trains, on prompts whose demonstrations come from
the retain set only."""

from helpers import write_config
from shiftlab import config
from shiftlab.session import Session
from shiftlab.stages import default_stages
from shiftlab.unlearn.judge import full_texts

CONFIG = """
data:
  kind: sentiment_sentences
  path: {sentences}
  id_domains: [amazon_cells]
  ood_domains: [yelp]
  max_per_domain: 40
  max_per_ood_domain: 12
backbone: hf_causal_lm:{lm}
task:
  template: "Review: {{text}}\\nSentiment:"
  label_words: {{negative: " negative", positive: " positive"}}
  shots: 2
recipes:
  - sft: {{epochs: 1, batch_size: 8}}
unlearn:
  on: sft
  forget: {{class: negative}}
  methods: [retrain, gradient_ascent]
"""


def occurrences(prompts, texts) -> list[int]:
    """How many of ``texts`` each prompt contains."""
    return [sum(t in p.prompt for t in texts) for p in prompts]


def test_forget_texts_are_never_demonstrations(tmp_path, sentences_dir, tiny_lm_dir) -> None:
    path = write_config(tmp_path / "c.yaml", CONFIG.format(sentences=sentences_dir, lm=tiny_lm_dir))
    session = Session(config.load(path), tmp_path / "run", default_stages())
    stage = session.stages["unlearn"]
    judged, forget, retain, retrain_set = stage.sets(session)
    train = session.source.train
    forget_texts = {str(train.inputs[i]) for i in stage.forget}
    assert len(forget) == len(stage.forget) >= 5 and len(retain) + len(forget) == len(train)
    # a forget prompt holds its own text and no other forget text; nothing else holds any
    assert occurrences(forget.inputs, forget_texts) == [1] * len(forget)
    assert max(occurrences(retain.inputs, forget_texts)) == 0
    for split in judged.eval_splits():
        assert max(occurrences(split.inputs, forget_texts)) == 0, split.name
    # what membership scores as a holdout (non-member) text is that text alone
    for split in judged.eval_splits():
        assert max(sum(t in text for t in forget_texts) for text in full_texts(split)) == 0
    retrained = session.benchmark_for(retrain_set)
    for split in (retrained.train, *retrained.eval_splits()):
        assert max(occurrences(split.inputs, forget_texts)) == 0, split.name
    # the run's own benchmark (the original model's) does draw from the whole training split
    seen = session.benchmark
    assert sum(occurrences(seen.train.inputs, forget_texts)) > len(forget)
    assert len(retrained.train) == len(retain)

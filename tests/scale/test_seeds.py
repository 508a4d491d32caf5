"""Seeds as an axis: entries expand per seed, consumers follow their seed, records carry the
seed and its group, and the report aggregates mean and standard deviation over seeds."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import write_config
from shiftlab import config, seeds
from shiftlab.errors import ConfigError
from shiftlab.runner import run
from shiftlab.store import read_records

RECIPES = """
  - zero_shot
  - full_ft: {epochs: 1, batch_size: 16, warmup_steps: 1}
  - wise_ft: {alphas: [0.5], select: false}"""


def seeded_config(tmp_path, sentences_dir, encoder_dir, extra="seeds: [0, 3]", recipes=RECIPES):
    text = f"""
data:
  kind: sentiment_sentences
  path: {sentences_dir}
  id_domains: [amazon_cells]
  ood_domains: [imdb]
  max_per_domain: 80
  max_per_ood_domain: 40
backbone: {encoder_dir}
prompts: ["a {{class_name}} review."]
{extra}
recipes:{recipes}
"""
    return config.load(write_config(tmp_path / "seeds.yaml", text))


def test_entries_expand_per_seed_and_consumers_follow_their_seed(tmp_path, sentences_dir):
    cfg = seeded_config(tmp_path, sentences_dir, "enc", extra="seed: 3\nseeds: [1, 3]")
    expanded = seeds.expand(cfg.recipes, cfg.seeds, cfg.seed)
    names = [(s.name, s.seed) for s in expanded]
    # The run seed's entries first under plain names; zero_shot (no training) once.
    assert names == [
        ("zero_shot", 3),
        ("full_ft", 3),
        ("wise_ft", 3),
        ("full_ft@seed1", 1),
        ("wise_ft@seed1", 1),
    ]
    wise = {s.name: s for s in expanded}["wise_ft@seed1"].options
    assert wise.finetuned == "full_ft@seed1" and wise.base in (None, "zero_shot")
    assert seeds.base_name("wise_ft@seed1[alpha=0.5]") == "wise_ft[alpha=0.5]"
    assert seeds.seeded("wise_ft[alpha=0.5]", 2) == "wise_ft@seed2[alpha=0.5]"
    assert seeds.seed_tags("wise_ft@seed1[alpha=0.5]", 3) == {
        "seed": 1,
        "seed_of": "wise_ft[alpha=0.5]",
    }
    assert seeds.with_repeats(["full_ft"], seeds.repeats(expanded)) == ["full_ft", "full_ft@seed1"]


@pytest.mark.parametrize("bad", ["seeds: []", "seeds: [1, 1]", "seeds: [a]"])
def test_bad_seed_lists_are_refused(tmp_path, sentences_dir, bad):
    with pytest.raises(ConfigError, match="seeds"):
        seeded_config(tmp_path, sentences_dir, "enc", extra=bad)


def test_a_run_repeats_training_per_seed_and_the_report_aggregates(
    tmp_path, sentences_dir, tiny_encoder_dir
):
    from shiftlab.report.seeds import seed_rows
    from shiftlab.report.summary import model_rows

    cfg = seeded_config(tmp_path, sentences_dir, tiny_encoder_dir)
    out = run(cfg, tmp_path / "run")
    records = read_records(out / "records.jsonl")
    models = list(dict.fromkeys(r["model"] for r in records))
    assert models == [
        "zero_shot",
        "full_ft",
        "wise_ft[alpha=0.5]",
        "full_ft@seed3",
        "wise_ft@seed3[alpha=0.5]",
    ]
    by = {(r["model"], r["split"]): r for r in records}
    assert by[("full_ft@seed3", "id_test")]["seed"] == 3
    assert by[("full_ft", "id_test")]["seed"] == 0
    assert {r["seed_of"] for r in records if r["model"].startswith("full_ft")} == {"full_ft"}
    # Another seed trains another model: the seed reached the data order and the init.
    a, b = by[("full_ft", "id_test")], by[("full_ft@seed3", "id_test")]
    assert (a["nll"], a["accuracy"]) != (b["nll"], b["accuracy"])
    # Mean and sample standard deviation over the two seeds, per model.
    rows = {r.model: r for r in seed_rows(model_rows(records), records)}
    ids = [by[(m, "id_test")]["accuracy"] for m in ("full_ft", "full_ft@seed3")]
    assert rows["full_ft"].seeds == [0, 3]
    assert rows["full_ft"].id_test == pytest.approx(np.mean(ids))
    assert rows["full_ft"].id_test_std == pytest.approx(np.std(ids, ddof=1))
    assert "zero_shot" not in rows  # one seed: nothing to aggregate
    html = (out / "report.html").read_text()
    assert "Over seeds" in html and "± " in html


def test_a_single_seed_run_grows_into_a_multi_seed_run(tmp_path, sentences_dir, tiny_encoder_dir):
    single = seeded_config(tmp_path, sentences_dir, tiny_encoder_dir, extra="")
    out = run(single, tmp_path / "run", report=False)
    first = read_records(out / "records.jsonl")
    multi = seeded_config(tmp_path, sentences_dir, tiny_encoder_dir, extra="seeds: [0, 1]")
    run(multi, out, report=False)
    grown = read_records(out / "records.jsonl")
    plain = [{k: v for k, v in r.items() if k != "seed_of"} for r in grown[: len(first)]]
    assert plain == first  # the run seed's entries were kept, not retrained
    assert len(grown) == len(first) + 2 * 3  # full_ft and wise_ft of seed 1 (3 splits each)

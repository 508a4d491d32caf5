"""Group recipes in whole runs: records name the selection rule and report every group."""

from helpers import write_config
from shiftlab import config
from shiftlab.runner import run
from shiftlab.store import read_records

COLORED = """
data:
  kind: colored_digits
  id_domains: [train]
  ood_domains: [reversed]
  correlation: 0.9
  fractions: [0.2, 0.1, 0.0]
backbone: small_cnn
recipes:
  - erm: {epochs: 2, batch_size: 64, lr: 0.01}
  - group_dro: {epochs: 2, batch_size: 64, lr: 0.01}
  - cvar_dro: {epochs: 2, batch_size: 64, lr: 0.01, select: id_val_accuracy}
  - br_dro: {epochs: 2, batch_size: 64, lr: 0.01, reweight_samples: true, balanced: true}
"""


def test_group_run_records_worst_group_and_selection(tmp_path):
    out = run(config.load(write_config(tmp_path / "c.yaml", COLORED)), tmp_path / "run")
    records = read_records(out / "records.jsonl")
    assert list(dict.fromkeys(r["model"] for r in records)) == [
        "erm",
        "group_dro",
        "cvar_dro",
        "br_dro",
    ]
    for r in records:
        assert set(r["group_accuracy"]) == {"0-4/red", "0-4/green", "5-9/red", "5-9/green"}
        present = [a for a in r["group_accuracy"].values() if a is not None]
        assert r["worst_group_accuracy"] == min(present)
    selection = {r["model"]: r["selected_by"] for r in records}
    assert selection == {
        "erm": "id_val_worst_group_accuracy",
        "group_dro": "id_val_worst_group_accuracy",
        "cvar_dro": "id_val_accuracy",
        "br_dro": "id_val_worst_group_accuracy",
    }
    assert all(1 <= r["selected_epoch"] <= 2 for r in records)
    br_dro = next(r for r in records if r["model"] == "br_dro")
    assert br_dro["params"]["reweight_samples"] and br_dro["params"]["balanced"]
    page = (out / "report.md").read_text()
    assert "### Worst-group accuracy" in page and "### Accuracy per group (ID test)" in page


PERFECT = """
data:
  kind: colored_digits
  id_domains: [train]
  ood_domains: [reversed]
  correlation: 1.0
  label_noise: 0.0
  fractions: [0.2, 0.1, 0.0]
backbone: small_cnn
recipes:
  - erm: {epochs: 1, batch_size: 64, lr: 0.01}
"""


def test_a_group_absent_from_a_split_is_reported_not_dropped(tmp_path):
    # colour always equals the label: the two groups where they disagree have no example
    out = run(config.load(write_config(tmp_path / "c.yaml", PERFECT)), tmp_path / "run")
    test = next(r for r in read_records(out / "records.jsonl") if r["split"] == "id_test")
    assert test["group_accuracy"]["0-4/green"] is None
    assert test["group_accuracy"]["5-9/red"] is None
    assert test["worst_group_accuracy"] is not None  # over the groups present
    assert "absent" in (out / "report.md").read_text()

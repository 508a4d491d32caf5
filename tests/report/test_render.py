import json

import pytest

from shiftlab.errors import RunDirError
from shiftlab.report import build_report, write_report


def record(model, recipe, split, role, accuracy, **params):
    return {
        "model": model,
        "recipe": recipe,
        "params": params,
        "adapter": None,
        "split": split,
        "role": role,
        "n": 10,
        "accuracy": accuracy,
        "macro_f1": accuracy,
        "ece": 0.1,
        "nll": 0.5,
        "worst_group_accuracy": None,
        "seed": 0,
    }


def write_run(folder):
    records = []
    for model, recipe, acc, params in [
        ("zero_shot", "zero_shot", (0.60, 0.62, 0.70, 0.52), {}),
        ("full_ft", "full_ft", (0.80, 0.81, 0.66, 0.54), {}),
        ("linear_probe", "linear_probe", (0.70, 0.71, 0.60, 0.50), {}),
        ("wise_ft[alpha=0]", "wise_ft", (0.60, 0.62, 0.70, 0.52), {"alpha": 0.0}),
        ("wise_ft[alpha=1]", "wise_ft", (0.80, 0.81, 0.66, 0.54), {"alpha": 1.0}),
    ]:
        for (split, role), a in zip(
            [("id_val", "id_val"), ("id_test", "id_test"), ("tweets", "ood"), ("nyt", "ood")],
            acc,
            strict=True,
        ):
            records.append(record(model, recipe, split, role, a, **params))
            if recipe in ("full_ft", "linear_probe"):
                records[-1]["standard"] = True
    (folder / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def test_tables_hold_id_and_mean_ood_accuracy(tmp_path):
    _, markdown, images = build_report(write_run(tmp_path))
    # OOD mean: (0.66 + 0.54) / 2 and (0.70 + 0.52) / 2. The two standard models (full_ft,
    # linear_probe) are the baselines: the line passes through both, so their effective
    # robustness is zero, and zero-shot lies above it.
    assert "| full_ft | full_ft | 0.800 | **0.810** | 0.600 | 0.000 |" in markdown
    assert "| linear_probe | linear_probe | 0.700 | 0.710 | 0.550 | 0.000 |" in markdown
    # logit line through (0.71, 0.55) and (0.81, 0.60), read at ID 0.62: 0.5128; 0.61 - 0.5128
    assert "| zero_shot | zero_shot | 0.600 | 0.620 | **0.610** | **0.097** |" in markdown
    assert "2 baseline points" in markdown and "the line is unreliable" in markdown
    assert "| full_ft | **0.810** | 0.660 | **0.540** |" in markdown  # per-domain table
    assert "- **seed**" not in markdown  # no config.yaml here: nothing invented
    assert set(images) == {"id_vs_ood.png", "wise_ft_alpha.png"}  # no reliability bins here
    assert all(png.startswith(b"\x89PNG") for png in images.values())


def test_effective_robustness_uses_the_configured_baselines(tmp_path):
    write_run(tmp_path)
    (tmp_path / "config.yaml").write_text("report: {baselines: [zero_shot], link: logit}\n")
    _, markdown, _ = build_report(tmp_path)
    assert "Effective robustness needs baselines" in markdown  # one baseline: no trend
    (tmp_path / "config.yaml").write_text("report: {baselines: [wise_ft, full_ft], link: probit}\n")
    _, markdown, _ = build_report(tmp_path)
    assert "minus the probit-space linear trend of 3 baseline points" in markdown


def test_html_is_self_contained(tmp_path):
    write_report(write_run(tmp_path))
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 2
    assert "http://" not in page and "https://" not in page
    assert (tmp_path / "report_files" / "id_vs_ood.png").is_file()
    assert "report_files/id_vs_ood.png" in (tmp_path / "report.md").read_text()


def test_missing_records_is_a_clear_error(tmp_path):
    with pytest.raises(RunDirError, match="has no records.jsonl"):
        build_report(tmp_path)

"""The command line: bad input gives one line, a non-zero exit, and no run directory."""

import csv
import subprocess
import sys

import pytest

from helpers import write_config
from shiftlab.cli import main
from shiftlab.data.sentiment_sentences import SentimentSentencesOptions, sentiment_sentences


def user_csv(path, sentences_dir, single_class=False):
    """A CSV of real sentences, string labels, and a site column: a user's own data."""
    data = sentiment_sentences(SentimentSentencesOptions(path=str(sentences_dir)), None)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["review", "sentiment", "site"])
        for site, domain in data.domains.items():
            for text, label in list(zip(domain.inputs, domain.labels, strict=True))[:60]:
                name = "positive" if (label or single_class) else "negative"
                writer.writerow([text, name, site])
    return path


def run_cli(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.err


def assert_one_line_error(code, err, pattern):
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("shiftlab: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    import re

    assert re.search(pattern, lines[0]), lines[0]


CSV_CONFIG = """
data: {{kind: csv, path: {path}, text_column: review, label_column: {label},
       domain_column: site{extra}}}
recipes: [zero_shot]
backbone: {backbone}
"""


@pytest.mark.parametrize(
    ("changes", "pattern"),
    [
        ({"extra": ", ood_domains: [yelpp]"}, r"unknown OOD domain 'yelpp'; did you mean 'yelp'"),
        ({"label": "stars"}, r"column 'stars' \(data.label_column\) not found"),
        ({"extra": ", class_names: [neg, pos]"}, r"label 'negative' in column 'sentiment' is not"),
    ],
)
def test_bad_data_gives_one_line_and_no_run_dir(
    tmp_path, capsys, sentences_dir, tiny_encoder_dir, changes, pattern
):
    path = user_csv(tmp_path / "mine.csv", sentences_dir)
    fields = {"path": path, "label": "sentiment", "extra": "", "backbone": tiny_encoder_dir}
    text = CSV_CONFIG.format(**{**fields, **changes})
    cfg = write_config(tmp_path / "c.yaml", text)
    code, err = run_cli(["run", str(cfg), "--out", str(tmp_path / "out")], capsys)
    assert_one_line_error(code, err, pattern)
    assert not (tmp_path / "out").exists()


def test_single_class_label_column(tmp_path, capsys, sentences_dir, tiny_encoder_dir):
    path = user_csv(tmp_path / "mine.csv", sentences_dir, single_class=True)
    cfg = write_config(
        tmp_path / "c.yaml",
        CSV_CONFIG.format(path=path, label="sentiment", extra="", backbone=tiny_encoder_dir),
    )
    code, err = run_cli(["run", str(cfg), "--out", str(tmp_path / "out")], capsys)
    assert_one_line_error(code, err, r"label column 'sentiment' has only one class \('positive'\)")
    assert not (tmp_path / "out").exists()


def test_missing_data_file(tmp_path, capsys, tiny_encoder_dir):
    text = CSV_CONFIG.format(
        path=tmp_path / "absent.csv", label="sentiment", extra="", backbone=tiny_encoder_dir
    )
    cfg = write_config(tmp_path / "c.yaml", text)
    code, err = run_cli(["run", str(cfg), "--out", str(tmp_path / "out")], capsys)
    assert_one_line_error(code, err, r"data file not found: .*absent.csv")
    assert not (tmp_path / "out").exists()


def test_unknown_recipe_suggests_the_closest(tmp_path, capsys, sentences_dir):
    cfg = write_config(
        tmp_path / "c.yaml",
        f"data: {{kind: sentiment_sentences, path: {sentences_dir}}}\n"
        "recipes: [zero_shot, wiseft]\n",
    )
    code, err = run_cli(["run", str(cfg), "--out", str(tmp_path / "out")], capsys)
    assert_one_line_error(code, err, r"unknown recipe 'wiseft'; did you mean 'wise_ft'\?")
    assert not (tmp_path / "out").exists()


def test_empty_domain_after_filtering(tmp_path, capsys):
    # VADER ratings lie in [-4, 4]: a neutral band of 4.5 filters every text out.
    cfg = write_config(
        tmp_path / "c.yaml", "data: {kind: vader, id_domains: [movie], neutral_band: 4.5}\n"
    )
    code, err = run_cli(["run", str(cfg), "--out", str(tmp_path / "out")], capsys)
    assert_one_line_error(code, err, r"ID domain 'movie' is empty after filtering")
    assert not (tmp_path / "out").exists()


def test_missing_config_file(tmp_path, capsys):
    code, err = run_cli(["run", str(tmp_path / "nope.yaml")], capsys)
    assert_one_line_error(code, err, "config file not found")


def test_console_script_exits_non_zero_without_traceback(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", "data: {kind: csv, path: absent.csv}\n")
    done = subprocess.run(
        [sys.executable, "-m", "shiftlab.cli", "run", str(cfg)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("shiftlab: error: data file not found")
    assert "Traceback" not in done.stderr


def test_users_csv_runs_with_only_kind_and_columns(
    tmp_path, capsys, sentences_dir, tiny_encoder_dir
):
    """Every other setting at its default: ID is the first domain, the rest OOD, six recipes."""
    path = user_csv(tmp_path / "mine.csv", sentences_dir)
    cfg = write_config(
        tmp_path / "mine.yaml",
        f"data: {{kind: csv, path: {path}, text_column: review, "
        "label_column: sentiment, domain_column: site}\n",
    )
    out = tmp_path / "out"
    # The tiny encoder stands in for MiniLM to keep the test fast; nothing else is set.
    code, err = run_cli(
        ["run", str(cfg), "--out", str(out), "--set", f"backbone={tiny_encoder_dir}"], capsys
    )
    assert code == 0, err
    from shiftlab.store import read_records

    records = read_records(out / "records.jsonl")
    assert {r["split"] for r in records if r["role"] == "ood"} == {"imdb", "yelp"}
    # five recipes + eleven WiSE-FT alphas + the val-selected and fixed-0.5 WiSE-FT models
    assert len({r["model"] for r in records if not r.get("trend_point")}) == 5 + 11 + 2
    assert (out / "report.html").is_file()


def test_list_reads_the_registries(capsys):
    assert main(["list", "recipes"]) == 0
    out = capsys.readouterr().out
    for name in ("zero_shot", "linear_probe", "full_ft", "lp_ft", "flyp", "wise_ft"):
        assert name in out


IMAGE_CONFIG = """
data: {{kind: image_folder, path: {path}, id_domains: [photo]{extra}}}
backbone: {{name: {backbone}, pretrained: false, image_size: 32}}
recipes: [{recipe}]
"""


@pytest.mark.parametrize(
    ("changes", "pattern"),
    [
        ({"path": "no/such/folder"}, r"image folder not found: no/such/folder"),
        ({"broken": True}, r"unreadable image .*broken\.jpg.*on_bad_image: skip"),
        (
            {"backbone": "timm:efficientnet_lite9"},
            r"timm has no model 'efficientnet_lite9'; did you",
        ),
        ({"recipe": "zero_shot"}, r"recipe .zero_shot. needs a causal language model .* or a text"),
    ],
)
def test_bad_image_input_gives_one_line_and_no_run_dir(
    tmp_path, capsys, tiny_images_dir, changes, pattern
):
    import shutil

    folder = tmp_path / "images"
    shutil.copytree(tiny_images_dir, folder)
    if changes.get("broken"):
        (folder / "photo" / "dog" / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    values = {
        "path": folder,
        "extra": "",
        "backbone": "timm:test_efficientnet",
        "recipe": "linear_probe",
        **{k: v for k, v in changes.items() if k != "broken"},
    }
    cfg = write_config(tmp_path / "bad.yaml", IMAGE_CONFIG.format(**values))
    out = tmp_path / "out"
    code, err = run_cli(["run", str(cfg), "--out", str(out)], capsys)
    assert_one_line_error(code, err, pattern)
    assert not out.exists()

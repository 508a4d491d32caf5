"""Every failing case of ../shared/reviews/bad-inputs.md, and one more of each class: exit status
2, exactly one ``shiftlab: error:`` line, no traceback, no directory left behind, no model
loaded, and in under 10 seconds. Cases are numbered as in the review; ``new-*`` are added here.

A records file cut short (03, 12) is the one case that is not an error: it is the signature of a
killed run, so ``report`` and ``compare`` skip the line with a warning, as the issue asks."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

from helpers import write_config
from shiftlab.cli import main

BASE = """
data:
  kind: sentiment_sentences
  path: {sentences}
  id_domains: [imdb]
  ood_domains: [yelp]
  max_per_domain: 50
backbone: {{name: minilm, max_length: 32}}
recipes:
  - zero_shot
  - linear_probe
"""

CSV = """
data:
  kind: csv
  path: {path}
  text_column: text
  label_column: label
  domain_column: domain
  id_column: id
  id_domains: [imdb]
  ood_domains: [yelp]
  max_per_domain: 50
backbone: {{name: minilm, max_length: 32}}
recipes: [zero_shot, linear_probe]
"""

IMAGES = """
data: {{kind: image_folder, path: {path}, id_domains: [photo], ood_domains: [sketch]}}
backbone: small_cnn
recipes: [linear_probe]
"""

PAIRS = """
data: {{kind: image_text, path: {path}, id_domains: [photo], ood_domains: [sketch]}}
backbone: {{name: lit, pairs: train}}
recipes: [zero_shot]
"""

LM = """
data:
  kind: sentiment_sentences
  path: {sentences}
  id_domains: [imdb]
  ood_domains: [yelp]
  max_per_domain: 50
  max_per_ood_domain: 20
backbone: smollm2-135m-instruct
task:
  name: sentiment
  template: "Review: {{text}}\\nSentiment:"
  label_words: {{negative: " negative", positive: " positive"}}
recipes: [zero_shot]
"""

MEMBERSHIP = """
backbone: smollm2-135m-instruct
membership: {{path: {texts}, methods: [loss, zlib, min_k, min_k_pp], k: 0.2}}
"""

AUDIT = """
backbone: smollm2-135m-instruct
audit: {methods: [gcg], budget: 5, targets: [" Paris"]}
"""


class NoModel(AssertionError):
    """A model was loaded for an input that is wrong before any model is needed."""


@pytest.fixture
def files(tmp_path: Path, sentences_dir: Path, run_dirs: dict[str, Path]) -> dict[str, Path]:
    """Every config, data file and run directory the cases name, under ``tmp_path``."""
    made: dict[str, Path] = {}

    def config(name: str, text: str) -> None:
        made[name] = write_config(tmp_path / f"{name}.yaml", text)

    config("base", BASE.format(sentences=sentences_dir))
    config("lm", LM.format(sentences=sentences_dir))
    rows = ["id,text,label,domain"]
    for domain, file in (("imdb", "imdb_labelled.txt"), ("yelp", "yelp_labelled.txt")):
        lines = (sentences_dir / file).read_text(encoding="utf-8").splitlines()[:60]
        for i, line in enumerate(lines):
            text, label = line.rsplit("\t", 1)
            label = "pos" if label.strip() == "1" else "neg"
            if domain == "yelp" and i % 3 == 0:
                label = "neutral"
            rows.append(f'{domain}-{i},"{text.replace(chr(34), "")}",{label},{domain}')
    (tmp_path / "d_oodlabel.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    config("csv_oodlabel", CSV.format(path=tmp_path / "d_oodlabel.csv"))
    make_images(tmp_path / "imgs")
    config("img_cnn", IMAGES.format(path=tmp_path / "imgs"))
    texts = tmp_path / "texts.jsonl"
    texts.write_text(
        "".join(f'{{"text": "sentence number {i}", "member": {i % 2}}}\n' for i in range(12)),
        encoding="utf-8",
    )
    config("mem", MEMBERSHIP.format(texts=texts))
    config("mem_yamlerr", "backbone: smollm2-135m-instruct\nmembership: {path: [texts.jsonl\n")
    config("mem_list", "- backbone: smollm2-135m-instruct\n- membership: {path: texts.jsonl}\n")
    config("mem_k", MEMBERSHIP.format(texts=texts).replace("k: 0.2", "k: 1.5"))
    made["mem_latin1"] = tmp_path / "mem_latin1.yaml"
    made["mem_latin1"].write_bytes("# café\nbackbone: smollm2-135m-instruct\n".encode("latin-1"))
    config("aud", AUDIT)
    config("aud_yamlerr", "backbone: smollm2-135m-instruct\naudit: {methods: [gcg]\n")
    config("aud_empty", AUDIT.replace('targets: [" Paris"]', "targets: []"))
    config("aud_tt", AUDIT.replace('targets: [" Paris"]', "random_targets: 2, target_tokens: []"))
    config("aud_list", "- backbone: smollm2-135m-instruct\n- audit: {methods: [gcg]}\n")
    config("aud_topk", AUDIT.replace("budget: 5,", "budget: 5, options: {gcg: {topk: 0}},"))
    pairs = ["image,caption,label,domain"]
    for domain in ("photo", "sketch"):
        for label in ("dog", "horse"):
            pairs += [f"imgs/{domain}/{label}/{i}.png,a {label},{label},{domain}" for i in range(4)]
    missing = [*pairs, "imgs/photo/dog/9.png,a dog,dog,photo"]
    (tmp_path / "pairs_missing.csv").write_text("\n".join(missing) + "\n")
    empty = [*pairs, "imgs/photo/dog/0.png,,dog,photo"]
    (tmp_path / "pairs_empty.csv").write_text("\n".join(empty) + "\n")
    for name in ("missing", "empty"):
        config(f"pairs_{name}", PAIRS.format(path=tmp_path / f"pairs_{name}.csv"))
    made["afile.txt"] = tmp_path / "afile.txt"
    made["afile.txt"].write_text("hi\n")
    made["stuff"] = tmp_path / "stuff"
    made["stuff"].mkdir()
    (made["stuff"] / "notes.txt").write_text("mine\n")
    made.update(run_dirs)
    return made


def make_images(root: Path) -> None:
    """PNG images in photo/ and sketch/ domains, dog and horse classes, 4 of each."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for domain in ("photo", "sketch"):
        for label in ("dog", "horse"):
            folder = root / domain / label
            folder.mkdir(parents=True)
            for i in range(4):
                pixels = rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")


@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory, sentences_dir, tiny_encoder_dir) -> dict[str, Path]:
    """A finished run (a tiny encoder, two recipes), a copy, and broken copies of it."""
    root = tmp_path_factory.mktemp("runs")
    text = BASE.format(sentences=sentences_dir).replace(
        "{name: minilm, max_length: 32}", str(tiny_encoder_dir)
    )
    good = root / "good1"
    assert main(["run", str(write_config(root / "base.yaml", text)), "--out", str(good)]) == 0
    dirs = {"good1": good}
    for name in ("good1b", "trunc1", "badcfgyaml", "foreignrec", "badparquet"):
        dirs[name] = root / name
        shutil.copytree(good, dirs[name])
    records = dirs["trunc1"] / "records.jsonl"
    records.write_bytes(records.read_bytes()[:-150])
    (dirs["badcfgyaml"] / "config.yaml").write_text("data: {kind: [unclosed\n")
    with (dirs["foreignrec"] / "records.jsonl").open("a") as handle:
        handle.write('{"note": "hand-added line"}\n')
    for parquet in (dirs["badparquet"] / "predictions").glob("*.parquet"):
        parquet.write_bytes(b"PAR1 not really parquet")
    return dirs


# (case, argv with {names} of files, expected pattern of the one error line)
CASES = [
    ("07", ["report", "{badcfgyaml}"], r"config\.yaml is not valid YAML \(line \d+, column \d+\)"),
    ("11", ["compare", "{good1}", "{good1b}", "--out", "{afile.txt}"], r"afile\.txt is a file"),
    ("16", ["run", "{base}", "--out", "{out}", "--set", "data.max_per_domain=[1,"],
     r"--set data\.max_per_domain: '\[1,' is not a valid YAML value"),
    ("29", ["run", "{base}", "--out", "{out}", "--set", "backbone.batch_size=0"],
     r"backbone\.batch_size must be >= 1, got 0"),
    ("30", ["run", "{base}", "--out", "{out}", "--set", "backbone.max_length=-5"],
     r"backbone\.max_length must be >= 1, got -5"),
    ("34", ["run", "{base}", "--out", "{out}", "--set", "backbone.name=small_cnn",
            "--set", "recipes=[linear_probe]"],
     r"backbone 'small_cnn' reads images, but data 'sentiment_sentences' is text"),
    ("35", ["run", "{img_cnn}", "--out", "{out}"], r"reads image arrays .*not image files"),
    ("40", ["run", "{lm}", "--out", "{out}", "--set", 'task.template="Sentiment of the review:"'],
     r"template 'Sentiment of the review:' has no \{text\} field"),
    ("41", ["run", "{lm}", "--out", "{out}",
            "--set", 'task.label_words={negative: " good", positive: " good"}'],
     r"classes 'negative' and 'positive' share the label word ' good'"),
    ("49", ["membership", "{mem_yamlerr}", "--out", "{out}"],
     r"membership config .* is not valid YAML \(line \d+"),
    ("50", ["membership", "{mem_list}", "--out", "{out}"], r"holds a list; it must be a YAML"),
    ("57", ["audit", "{aud_yamlerr}", "--out", "{out}"], r"is not valid YAML"),
    ("58", ["audit", "{aud_empty}", "--out", "{out}"], r"audit has no targets"),
    ("59", ["audit", "{aud_tt}", "--out", "{out}"], r"audit\.target_tokens must not be empty"),
    ("63", ["audit", "{aud_list}", "--out", "{out}"], r"holds a list"),
    ("64", ["audit", "{aud}", "--out", "{afile.txt}"], r"--out .*afile\.txt is a file"),
    ("65", ["membership", "{mem}", "--out", "{afile.txt}"], r"--out .*afile\.txt is a file"),
    ("68", ["run", "{base}", "--out", "{out}", "--set", "seed=-1"],
     r"seed must be in \[0, 4294967295\], got -1"),
    ("71", ["run", "{csv_oodlabel}", "--out", "{out}"],
     r"OOD domain 'yelp' has label 'neutral' \(\d+ examples\), which the ID training data never"),
    ("78", ["run", "{base}", "--out", "{out}", "--set",
            "recipes=[{model_soup: {search: grid, seeds: [0, 0], epochs: 1}}]"],
     r"recipes\.model_soup\.seeds repeats 0"),
    ("79", ["run", "{base}", "--out", "{out}", "--set", "recipes.linear_probe.max_iter=-1"],
     r"recipes\.linear_probe\.max_iter must be >= 1, got -1"),
    ("80", ["run", "{base}", "--out", "{out}", "--set",
            "recipes=[{full_ft: {epochs: 1, batch_size: 16, warmup_steps: 0, lr: .nan}}]"],
     r"recipes\.full_ft\.lr must be a finite number"),
    ("82", ["run", "{base}", "--out", "{out}", "--set",
            "recipes=[{full_ft: {epochs: 1, batch_size: 16, warmup_steps: -5}}]"],
     r"recipes\.full_ft\.warmup_steps must be >= 0, got -5"),
    ("85", ["run", "{base}", "--out", "/proc/shiftlab_out"], r"--out /proc/shiftlab_out cannot"),
    ("86", ["report", "{foreignrec}"], r"records\.jsonl line \d+ is not a shiftlab record"),
    ("88", ["run", "{base}", "--out", "{out}", "--set", "prompts=[]"],
     r"prompts must not be empty"),
    ("89", ["run", "{base}", "--out", "{out}", "--set", "recipes=[]"], r"recipes is empty"),
    ("91", ["run", "{base}", "--out", "{out}", "--set",
            "executor={kind: ray, resources: {num_cpus: -1}}"],
     r"executor\.resources\.num_cpus must be >= 0, got -1"),
    # one more of each class
    ("new-file-utf8", ["membership", "{mem_latin1}", "--out", "{out}"],
     r"membership config .* is not UTF-8 text \(byte 0xe9 on line 1\)"),
    ("new-file-parquet", ["compare", "{good1}", "{badparquet}", "--out", "{out}"],
     r"predictions file .* cannot be read"),
    ("new-set", ["run", "{base}", "--out", "{out}", "--set", "recipes=[{full_ft: {lr: 1e-4}"],
     r"--set recipes: .* is not a valid YAML value"),
    ("new-out-through-file", ["run", "{base}", "--out", "{afile.txt}/run"], r"which is a file"),
    ("new-out-foreign", ["membership", "{mem}", "--out", "{stuff}"],
     r"stuff exists and is not a membership directory"),
    ("new-range", ["run", "{base}", "--out", "{out}", "--set",
                   "adapt=[{tent: {steps: 0}}]"], r"adapt\.tent\.steps must be >= 1"),
    ("new-method-audit", ["audit", "{aud_topk}", "--out", "{out}"],
     r"audit\.options\.gcg\.topk must be >= 1, got 0"),
    ("new-method-membership", ["membership", "{mem_k}", "--out", "{out}"],
     r"membership\.k must be in \(0, 1\], got 1\.5"),
    ("new-method-curate", ["run", "{base}", "--out", "{out}", "--set",
                           "curate=[{kcenter: {keep: [1.5]}}]"],
     r"curate\.kcenter\.keep must be in \(0, 1\], got 1\.5"),
    ("noisy-loss-recipe", ["run", "{base}", "--out", "{out}", "--set",
                           "recipes=[{linear_probe: {loss: gce}}]"],
     r"'linear_probe' trains with its own objective and cannot use loss: gce"),
    ("noisy-gce-q", ["run", "{base}", "--out", "{out}", "--set",
                     "recipes=[{full_ft: {loss: gce, q: 0}}]"],
     r"recipes\.full_ft_gce\.q must be in \(0, 1\], got 0|recipes\.full_ft\.q must be in \(0, 1\]"),
    ("noisy-forget-rate", ["run", "{base}", "--out", "{out}", "--set",
                           "recipes=[{coteaching: {forget_rate: 1.5}}]"],
     r"recipes\.coteaching\.forget_rate must be in \[0, 1\), got 1\.5"),
    ("new-method-unlearn", ["run", "{base}", "--out", "{out}", "--set",
                            "unlearn={forget: {class: negative}, methods: [{npo: {beta: -1}}]}"],
     r"unlearn\.methods\.npo\.beta must be > 0, got -1"),
    ("new-modality", ["run", "{base}", "--out", "{out}", "--set", "backbone.name=open_clip:RN50"],
     r"backbone 'open_clip:RN50' reads images, but data 'sentiment_sentences' is text"),
    ("new-silent-domain", ["run", "{base}", "--out", "{out}", "--set",
                           "data.max_per_domain={imbd: 20}"],
     r"data\.max_per_domain: unknown domain 'imbd'; did you mean 'imdb'\?"),
    ("new-silent-duplicate", ["run", "{base}", "--out", "{out}", "--set",
                              "recipes=[linear_probe, {wise_ft: {alphas: [0.5, 0.5]}}]"],
     r"recipes\.wise_ft\.alphas repeats 0\.5"),
    # issue 26: the unlabeled pool and annotations
    ("pool-domain", ["run", "{base}", "--out", "{out}", "--set",
                     "data.unlabeled={domains: [yelpp]}"],
     r"unknown unlabeled pool domain 'yelpp'; did you mean 'yelp'\?"),
    ("pool-fraction", ["run", "{base}", "--out", "{out}", "--set",
                       "data.unlabeled={domains: [yelp], fraction: 1.5}"],
     r"data\.unlabeled\.fraction must be in \(0, 1\], got 1\.5"),
    ("pool-missing", ["run", "{base}", "--out", "{out}", "--set", "recipes=[divdis]"],
     r"recipe 'divdis' learns from unlabeled data, but the run has no pool"),
    ("enp-annotations", ["run", "{base}", "--out", "{out}", "--set", "recipes=[enp]"],
     r"recipe 'enp' learns from annotations .* which data 'sentiment_sentences' lacks"),
    ("new-groups", ["run", "{base}", "--out", "{out}", "--set", "recipes=[group_dro]"],
     r"recipe 'group_dro' needs groups in ID train, which data 'sentiment_sentences' lacks"),
    ("new-lm", ["run", "{lm}", "--out", "{out}", "--set", 'task.label_words={negative: " no"}'],
     r"no label word for class 'positive'"),
    ("pairs-missing-image", ["run", "{pairs_missing}", "--out", "{out}"],
     r"pairs_missing\.csv:18: image not found: .*9\.png"),
    ("pairs-empty-caption", ["run", "{pairs_empty}", "--out", "{out}"],
     r"pairs_empty\.csv:18: empty caption"),
    ("poison-fraction-0", ["run", "{base}", "--out", "{out}", "--set",
                           "data.poison={target: positive, fraction: 0}"],
     r"data\.poison\.fraction must be in \(0, 1\), got 0"),
    ("poison-fraction-1", ["run", "{base}", "--out", "{out}", "--set",
                           "data.poison={target: positive, fraction: 1.0}"],
     r"data\.poison\.fraction must be in \(0, 1\), got 1\.0"),
    ("poison-target", ["run", "{base}", "--out", "{out}", "--set",
                       "data.poison={target: banana, fraction: 0.1}"],
     r"banana"),
    ("cleanclip-clean-unpoisoned", ["run", "{base}", "--out", "{out}", "--set",
                                    "recipes=[{cleanclip: {data: clean}}]"],
     r"recipe 'cleanclip' \(data: clean\) .* the data is not poisoned"),
    ("lit-options-elsewhere", ["run", "{base}", "--out", "{out}", "--set",
                               "backbone.pairs=train"],
     r"backbone\.pairs and backbone\.lit configure a lit backbone; 'minilm' is not one"),
    ("tracking-uri", ["run", "{base}", "--out", "{out}", "--set",
                      "tracking={mlflow: {uri: 'bogus://x'}}"],
     r"tracking\.mlflow\.uri 'bogus://x': MLflow stores runs at|pip install 'shiftlab\[mlflow\]'"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "argv", "pattern"), CASES, ids=[c[0] for c in CASES])
def test_a_bad_input_is_one_line_before_any_work(
    case, argv, pattern, files, tmp_path, capsys, monkeypatch
):
    def no_model(*_, **__):
        raise NoModel(f"case {case} loaded a model")

    monkeypatch.setattr("shiftlab.session.load_backbone", no_model)
    monkeypatch.setattr("shiftlab.models.load_backbone", no_model)
    out = tmp_path / "out"
    names = {**{k: str(v) for k, v in files.items()}, "out": str(out)}
    args = [re.sub(r"\{([\w.]+)\}", lambda m: names.get(m[1], m[0]), a) for a in argv]
    before = {p: sorted(p.rglob("*")) for p in files.values() if Path(p).is_dir()}
    started = time.perf_counter()
    code = main(args)
    seconds = time.perf_counter() - started
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("shiftlab: error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert re.search(pattern, lines[0]), lines[0]
    assert not out.exists(), f"{out} left behind"
    assert not Path("/proc/shiftlab_out").exists()
    assert {p: sorted(p.rglob("*")) for p in before} == before  # nothing written into them
    assert seconds < 10, f"{seconds:.1f} s"


@pytest.mark.parametrize("command", ["report", "compare"])
def test_a_records_file_cut_short_is_skipped_with_a_warning(command, files, tmp_path, capsys):
    trunc = files["trunc1"]
    argv = ["report", str(trunc)]
    if command == "compare":
        argv = ["compare", str(files["good1"]), str(trunc), "--out", str(tmp_path / "cmp")]
    code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert re.search(r"line \d+ is cut short .*skipped", err), err
    if command == "report":
        assert code == 0 and (trunc / "report.html").is_file()
    else:  # the runs no longer hold the same records: one line, or a report
        assert code == 0 or len([x for x in err.splitlines() if "error:" in x]) == 1


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        (["recipes=[{full_ft: {lr: 0.5}}]"], r"warning: recipes\.full_ft\.lr 0\.5 is large"),
        (
            ["backbone=smollm2-135m-instruct", "task={template: '{text}', label_map: permuted, "
             "label_words: {negative: ' no', positive: ' yes'}}"],
            r"warning: task: label_map permuted with shots 0",
        ),
    ],
)  # fmt: skip
def test_a_suspicious_value_is_a_one_line_warning(change, pattern, files, capsys):
    from shiftlab import config

    config.load(files["base"], change)
    err = capsys.readouterr().err
    assert len([line for line in err.splitlines() if re.search(pattern, line)]) == 1, err


def test_an_error_found_while_running_leaves_no_directory(
    tmp_path, capsys, sentences_dir, tiny_encoder_dir
):
    # a learning rate that makes the loss NaN shows only in training, after the run directory
    # exists: the run made the folder, no entry finished, so the folder goes too
    text = BASE.format(sentences=sentences_dir).replace(
        "{name: minilm, max_length: 32}", str(tiny_encoder_dir)
    )
    path = write_config(tmp_path / "c.yaml", text)
    out = tmp_path / "out"
    recipe = "recipes=[{full_ft: {lr: 1.0e+8, epochs: 1, batch_size: 8, warmup_steps: 0}}]"
    code = main(["run", str(path), "--out", str(out), "--set", recipe])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("shiftlab: error:")]
    assert code == 2 and len(lines) == 1 and "the loss became" in lines[0], err
    assert not out.exists()


TMARS = """
data: {{kind: image_text, path: {path}, id_domains: [light], ood_domains: [dark],
        split: {{train: 0.5, val: 0.25, test: 0.25}}}}
backbone: {backbone}
recipes: [linear_probe]
curate: [{{prune: {{by: tmars, keep: [0.5]}}}}]
curation: {{folds: 2}}
"""


@pytest.mark.parametrize(
    ("backbone", "no_ocr", "pattern"),
    [
        ("{name: efficientnet_lite0, image_size: 32}", False,
         r"curation score 'tmars' needs a backbone with a text side"),
        ("{name: lit, pretrained: false, image_size: 32}", True,
         r"'rapidocr_onnxruntime' is not installed; run: pip install 'shiftlab\[ocr\]'"),
    ],
)  # fmt: skip
def test_tmars_without_a_text_side_or_ocr_is_one_line_before_the_run_directory(
    backbone, no_ocr, pattern, tmp_path, capsys, monkeypatch
):
    """These two need the loaded model (whether it has a text side) or the OCR engine: still one
    line, exit 2, and no run directory."""
    pytest.importorskip("timm")
    from shiftlab.data.image_text import sample_pairs

    if no_ocr:  # as if never installed: no module, and no engine an earlier test made
        monkeypatch.setitem(__import__("sys").modules, "rapidocr_onnxruntime", None)
        monkeypatch.setattr("shiftlab.curation.tmars._ENGINE", None)
    path = sample_pairs(tmp_path)["path"]
    config = write_config(tmp_path / "run.yaml", TMARS.format(path=path, backbone=backbone))
    out = tmp_path / "out"
    code = main(["run", str(config), "--out", str(out)])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("shiftlab: error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert re.search(pattern, lines[0]), lines[0]
    assert not out.exists()

"""MLflow tracking of whole runs on the tiny encoder, to a temporary SQLite store (nothing
external starts): one parent run per run directory, one nested run per entry with its records
as metrics, the report as an artifact; a repeated or resumed run continues the same parent and
logs no entry twice; what can be checked before any work is one error line."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import write_config
from shiftlab.cli import main
from shiftlab.store import read_records
from shiftlab.tracking import entry_metrics, resolve_uri, safe_key

mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402

# SQLAlchemy's deprecation warnings from MLflow's own store, opened by the tests' clients
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

COMMAND = "import sys; from shiftlab.cli import main; sys.exit(main())"
TINY_TRAIN = "{epochs: 1, batch_size: 16, warmup_steps: 1}"
RECIPES = f"""
  - zero_shot
  - linear_probe: {{num_c: 2}}
  - full_ft: {TINY_TRAIN}
  - wise_ft: {{alphas: [0, 1]}}"""


def config_text(sentences_dir: Path, encoder_dir: Path, store: str, recipes: str = RECIPES) -> str:
    return f"""
data:
  kind: sentiment_sentences
  path: {sentences_dir}
  id_domains: [amazon_cells]
  ood_domains: [imdb, yelp]
  max_per_domain: 80
  max_per_ood_domain: 40
backbone: {encoder_dir}
recipes:{recipes}
tracking:
  mlflow: {{uri: '{store}', experiment: tiny}}
"""


def runs_of(client: MlflowClient) -> tuple[list, list]:
    """The parent runs and the nested runs of experiment ``tiny``."""
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


def check_run(client: MlflowClient, out: Path) -> str:
    """Exactly one parent, a finished nested run per entry holding every record's accuracy;
    the parent's id (the one the run directory names)."""
    parents, children = runs_of(client)
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    state = json.loads((out / "tracking" / "mlflow.json").read_text())
    assert [p["run_id"] for p in state["parents"]] == [parent.info.run_id]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert all(c.info.status == "FINISHED" for c in children)
    children = [c for c in children if "shiftlab.superseded" not in c.data.tags]
    records = read_records(out / "records.jsonl")
    entries = {json.loads(p.read_text())["digest"]: p.stem for p in (out / "state").iterdir()}
    assert sorted(c.data.tags["shiftlab.entry"] for c in children) == sorted(entries.values())
    assert {c.data.tags["shiftlab.digest"] for c in children} == set(entries)
    by_entry = {c.data.tags["shiftlab.entry"]: c for c in children}
    for record in records:
        entry = record["model"].split("[")[0]
        child = by_entry[entry]
        several = len({r["model"] for r in records if r["model"].split("[")[0] == entry}) > 1
        key = safe_key(f"{record['model']}/" * several + f"{record['split']}.accuracy")
        assert math.isclose(child.data.metrics[key], record["accuracy"], rel_tol=1e-9), key
        low, high = record["ci"]["accuracy"]
        assert math.isclose(child.data.metrics[key + "_low"], low, rel_tol=1e-9)
        assert math.isclose(child.data.metrics[key + "_high"], high, rel_tol=1e-9)
        assert child.data.tags["seed"] == str(record["seed"])
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"report.html", "report.md", "records.jsonl", "predictions"} <= artifacts
    predictions = {a.path for a in client.list_artifacts(parent.info.run_id, "predictions")}
    assert predictions == {f"predictions/{p.name}" for p in (out / "predictions").iterdir()}
    return parent.info.run_id


def test_a_run_logs_one_parent_and_a_nested_run_per_entry_and_resumes_into_it(
    tmp_path, sentences_dir, tiny_encoder_dir, capsys
):
    store = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=resolve_uri(store))
    path = write_config(tmp_path / "run.yaml", config_text(sentences_dir, tiny_encoder_dir, store))
    out = tmp_path / "run"
    assert main(["run", str(path), "--out", str(out)]) == 0
    parent = check_run(client, out)
    _, children = runs_of(client)
    full_ft = next(c for c in children if c.data.tags["shiftlab.entry"] == "full_ft")
    assert full_ft.data.params["epochs"] == "1" and full_ft.data.params["lr"] == "3e-05"
    assert full_ft.data.tags["method"] == "full_ft"
    lp = next(c for c in children if c.data.tags["shiftlab.entry"] == "linear_probe")
    assert lp.data.params["num_c"] == "2"
    wise = next(c for c in children if c.data.tags["shiftlab.entry"] == "wise_ft")
    assert "wise_ft_alpha_0_/id_test.accuracy" in wise.data.metrics
    assert (tmp_path / "mlruns" / "artifacts").is_dir()  # beside the database, not in the cwd
    assert "warning: tracking" not in capsys.readouterr().err

    # the same config into the same directory: every entry skipped, nothing logged twice; but
    # a nested run cut short (killed while it was logged: left RUNNING) is logged again
    zero_shot = next(c for c in children if c.data.tags["shiftlab.entry"] == "zero_shot")
    client.update_run(zero_shot.info.run_id, status="RUNNING")
    assert main(["run", str(path), "--out", str(out)]) == 0
    assert "finished in an earlier run" in capsys.readouterr().err
    assert check_run(client, out) == parent
    again = runs_of(client)[1]
    assert len(again) == len(children)
    assert zero_shot.info.run_id not in {c.info.run_id for c in again}

    # wise_ft with other options runs again: a new nested run, the old one tagged superseded
    changed = path.read_text().replace("alphas: [0, 1]", "alphas: [0.5]")
    assert main(["run", str(write_config(path, changed)), "--out", str(out)]) == 0
    assert check_run(client, out) == parent
    old = [c for c in runs_of(client)[1] if "shiftlab.superseded" in c.data.tags]
    assert [c.info.run_id for c in old] == [wise.info.run_id]


def test_a_killed_run_resumes_into_the_same_parent(tmp_path, sentences_dir, tiny_encoder_dir):
    # killed (SIGKILL) in full_ft's first training step, after zero_shot and linear_probe were
    # logged: the parent stays RUNNING; the resumed run skips those two, logs full_ft and
    # wise_ft into the same parent and finishes it
    store = f"sqlite:///{tmp_path / 'db' / 'm.db'}"
    client = MlflowClient(tracking_uri=resolve_uri(store))
    path = write_config(tmp_path / "run.yaml", config_text(sentences_dir, tiny_encoder_dir, store))
    out = tmp_path / "run"
    env = {**os.environ, "SHIFTLAB_KILL_AT": "train_step:1"}
    argv = [sys.executable, "-c", COMMAND, "run", str(path), "--out", str(out)]
    killed = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    parents, children = runs_of(client)
    assert len(parents) == 1 and parents[0].info.status == "RUNNING"
    assert sorted(c.data.tags["shiftlab.entry"] for c in children) == ["linear_probe", "zero_shot"]
    assert main(["run", str(path), "--out", str(out)]) == 0
    assert check_run(client, out) == parents[0].info.run_id
    assert len(runs_of(client)[1]) == 4


def test_tracking_added_to_a_finished_run_logs_its_entries(
    tmp_path, sentences_dir, tiny_encoder_dir
):
    store = f"sqlite:///{tmp_path / 'db' / 'm.db'}"
    text = config_text(sentences_dir, tiny_encoder_dir, store, "\n  - zero_shot\n  - linear_probe")
    untracked = write_config(tmp_path / "a.yaml", text.split("tracking:")[0])
    out = tmp_path / "run"
    assert main(["run", str(untracked), "--out", str(out)]) == 0
    assert not (out / "tracking").exists()
    assert main(["run", str(write_config(tmp_path / "b.yaml", text)), "--out", str(out)]) == 0
    check_run(MlflowClient(tracking_uri=resolve_uri(store)), out)


def test_a_tracking_failure_mid_run_is_a_warning(
    tmp_path, sentences_dir, tiny_encoder_dir, capsys, monkeypatch
):
    store = f"sqlite:///{tmp_path / 'db' / 'm.db'}"
    text = config_text(sentences_dir, tiny_encoder_dir, store, "\n  - zero_shot\n  - linear_probe")
    path = write_config(tmp_path / "a.yaml", text)

    def unreachable(*_, **__):
        raise ConnectionError("tracking server unreachable")

    monkeypatch.setattr(MlflowClient, "create_run", unreachable)
    out = tmp_path / "run"
    assert main(["run", str(path), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert len(re.findall(r"warning: tracking: MLflow at .* failed", err)) == 1, err
    assert len(list((out / "state").iterdir())) == 2 and (out / "report.html").is_file()
    monkeypatch.undo()  # reachable again: running again logs what is missing
    assert main(["run", str(path), "--out", str(out)]) == 0
    check_run(MlflowClient(tracking_uri=resolve_uri(store)), out)


@pytest.mark.parametrize(
    ("tracking", "pattern"),
    [
        ("{mlflow: {uri: 'bogus://x'}}", r"tracking\.mlflow\.uri 'bogus://x': MLflow stores runs"),
        ("{mlflow: {urii: x}}", r"unknown key 'tracking\.mlflow\.urii'; did you mean 'uri'\?"),
        ("{mlflow: {uri: 'http://127.0.0.1:1'}}", r"tracking\.mlflow\.uri 'http://127\.0\.0\.1:1'"),
    ],
)
def test_a_bad_tracking_setting_is_one_line_before_any_work(
    tracking, pattern, tmp_path, sentences_dir, tiny_encoder_dir, capsys
):
    text = config_text(sentences_dir, tiny_encoder_dir, "x").split("tracking:")[0]
    path = write_config(tmp_path / "a.yaml", text + f"tracking: {tracking}\n")
    out = tmp_path / "run"
    assert main(["run", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("shiftlab: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert re.search(pattern, lines[0]), lines[0]
    assert not out.exists()


def test_missing_mlflow_names_the_extra(
    tmp_path, sentences_dir, tiny_encoder_dir, capsys, monkeypatch
):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow raises ImportError
    path = write_config(tmp_path / "a.yaml", config_text(sentences_dir, tiny_encoder_dir, "x"))
    code = main(["run", str(path), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("shiftlab: error:")]
    assert code == 2 and len(lines) == 1 and "pip install 'shiftlab[mlflow]'" in lines[0], err
    assert not (tmp_path / "run").exists()


def test_metric_keys_name_what_varies_and_are_valid():
    records = [
        {"model": "wise_ft[alpha=0.5]", "adapter": None, "split": "id_test", "accuracy": 0.5,
         "n": 16, "seed": 0, "ci": {"accuracy": [0.25, 0.75]},
         "group_accuracy": {"neg x amazon": 0.4, "pos": None}},
        {"model": "wise_ft[alpha=1]", "adapter": None, "split": "id_test", "accuracy": 0.75},
    ]  # fmt: skip
    metrics = entry_metrics(records)
    assert metrics == {
        "wise_ft_alpha_0.5_/id_test.accuracy": 0.5,
        "wise_ft_alpha_0.5_/id_test.accuracy_low": 0.25,
        "wise_ft_alpha_0.5_/id_test.accuracy_high": 0.75,
        "wise_ft_alpha_0.5_/id_test.group_accuracy/neg x amazon": 0.4,
        "wise_ft_alpha_1_/id_test.accuracy": 0.75,
    }
    assert entry_metrics(records[:1])["id_test.accuracy"] == 0.5
    assert safe_key("../a//b/") == "_../a/b" and safe_key("x" * 300) == "x" * 250

"""The Ray executor: a local Ray instance with 2 CPUs runs the job graph (recipes, a soup's
ingredients as tasks of their own, consumers after what they consume) and the driver writes
the records the local executor writes; bad executor input fails in one line before the run
directory exists."""

from __future__ import annotations

import dataclasses
import time

import pytest

from helpers import write_config
from shiftlab import cli, config
from shiftlab.errors import ConfigError, MissingExtraError
from shiftlab.executors import ray_tasks
from shiftlab.runner import run
from shiftlab.store import read_records

ray = pytest.importorskip("ray")

RECIPES = """
  - zero_shot
  - linear_probe: {num_c: 2}
  - full_ft: {epochs: 1, batch_size: 16, warmup_steps: 1}
  - wise_ft: {alphas: [0.5], select: false}
  - model_soup: {ingredients: 2, epochs_range: [1, 1], batch_size: 16, warmup_steps: 1,
                 checkpoint_every: 1}
  - calibrated_ensemble"""


def ray_config(tmp_path, sentences_dir, encoder_dir, executor="executor: ray"):
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
{executor}
recipes:{RECIPES}
"""
    return write_config(tmp_path / "ray.yaml", text)


def test_the_ray_executor_writes_the_records_of_the_local_one(
    tmp_path, sentences_dir, tiny_encoder_dir, monkeypatch
):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # Ray's workers run one thread each
    path = ray_config(tmp_path, sentences_dir, tiny_encoder_dir, executor="")
    local = run(config.load(path), tmp_path / "local", report=False)
    cfg = config.load(path)
    cfg = dataclasses.replace(cfg, executor=dataclasses.replace(cfg.executor, kind="ray"))
    remote = run(cfg, tmp_path / "ray", report=False)
    expected = read_records(local / "records.jsonl")
    found = read_records(remote / "records.jsonl")
    assert [(r["model"], r["split"]) for r in found] == [(r["model"], r["split"]) for r in expected]
    for a, b in zip(expected, found, strict=True):
        for key in ("accuracy", "n", "params", "selected_epoch", "role"):
            assert a.get(key) == b.get(key), (key, a["model"], a["split"])
        assert b["nll"] == pytest.approx(a["nll"], rel=1e-4, abs=1e-6)
    assert not (remote / "scratch").exists() or not any((remote / "scratch").iterdir())
    assert not list(remote.rglob("*.tmp"))


def test_resume_crosses_executors(tmp_path, sentences_dir, tiny_encoder_dir, capsys):
    path = ray_config(tmp_path, sentences_dir, tiny_encoder_dir, executor="")
    cfg = config.load(path)
    out = run(cfg, tmp_path / "run", report=False)
    before = read_records(out / "records.jsonl")
    capsys.readouterr()
    ray_cfg = dataclasses.replace(cfg, executor=dataclasses.replace(cfg.executor, kind="ray"))
    run(ray_cfg, out, report=False)
    assert capsys.readouterr().err.count("finished in an earlier run") == 6
    assert read_records(out / "records.jsonl") == before


def one_line_error(capsys, argv: list[str]) -> str:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_an_unreachable_address_fails_at_once(tmp_path, sentences_dir, tiny_encoder_dir, capsys):
    path = ray_config(tmp_path, sentences_dir, tiny_encoder_dir)
    out = tmp_path / "run"
    started = time.perf_counter()
    line = one_line_error(capsys, ["run", str(path), "--out", str(out), "--address", "127.0.0.1:9"])
    assert "no Ray cluster answers at 127.0.0.1:9" in line
    assert time.perf_counter() - started < 10 and not out.exists()


def test_resources_no_node_has_are_refused(tmp_path, sentences_dir, tiny_encoder_dir, capsys):
    executor = "executor: {kind: ray, resources: {num_cpus: 1, num_gpus: 4}}"
    path = ray_config(tmp_path, sentences_dir, tiny_encoder_dir, executor=executor)
    out = tmp_path / "run"
    line = one_line_error(capsys, ["run", str(path), "--out", str(out)])
    assert "no Ray node has the resources" in line and "GPU=0" in line
    assert not out.exists() and not ray.is_initialized()


def test_ray_missing_names_the_extra(
    tmp_path, sentences_dir, tiny_encoder_dir, capsys, monkeypatch
):
    def missing(module, extra):
        raise MissingExtraError(f"'{module}' is not installed")

    monkeypatch.setattr(ray_tasks, "require", missing)
    path = ray_config(tmp_path, sentences_dir, tiny_encoder_dir)
    out = tmp_path / "run"
    line = one_line_error(capsys, ["run", str(path), "--out", str(out)])
    assert "pip install 'shiftlab[ray]'" in line and not out.exists()


def test_resources_map_to_ray_options_and_fit_checks():
    assert ray_tasks.task_options({"num_cpus": 2, "num_gpus": 1, "a100": 1}) == {
        "num_cpus": 2,
        "num_gpus": 1,
        "resources": {"a100": 1.0},
    }
    ray_tasks.check_resources({"num_cpus": 2}, [{"CPU": 1.0}, {"CPU": 4.0}])
    with pytest.raises(ConfigError, match="CPU=1; CPU=4"):
        ray_tasks.check_resources({"num_cpus": 8}, [{"CPU": 1.0}, {"CPU": 4.0}])

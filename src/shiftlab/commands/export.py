"""``shiftlab export RUN_DIR MODEL --out DIR``: a run's model as a folder its own library loads
without shiftlab, with a model card of its ID / OOD evidence.

- A text encoder's classifier (mean pooling, L2 normalisation, linear head) becomes a
  sentence-transformers folder: ``Transformer -> Pooling(mean) -> Normalize -> Dense(head)``,
  so ``SentenceTransformer(DIR).encode(texts)`` gives the logits, one line.
- A timm image classifier becomes ``model.safetensors`` (the timm model with its classifier set
  to the head) and ``config.json`` (timm's ``architecture`` / ``num_classes`` /
  ``pretrained_cfg``), so ``timm.create_model(ARCH, pretrained=True, num_classes=K,
  pretrained_cfg_overlay=dict(file=DIR + "/model.safetensors"))`` loads it, and timm's own
  ``resolve_data_config`` / ``create_transform`` preprocess as the run did.

Every export holds ``README.md`` (a Hugging Face model card: metadata block and the run's
numbers with intervals, see :mod:`shiftlab.commands.card`) and ``shiftlab.json`` (what
:func:`shiftlab.exported.load` reads back). The model is looked up in the run directory as a
later entry would: saved weights, or made again from saved ones (WiSE-FT mixes, soups), so
every record's model name can be exported.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from rich.markup import escape
from torch import nn

from shiftlab import __version__
from shiftlab._optional import require
from shiftlab.atomic import write_atomic
from shiftlab.commands.card import model_card
from shiftlab.config.load import parse
from shiftlab.entries import unlearn_key
from shiftlab.errors import ConfigError, RunDirError
from shiftlab.evaluate.calibration import temperature_scaled
from shiftlab.exported import FORMAT_FILE
from shiftlab.files import check_out_dir
from shiftlab.lm.load import resolve_source
from shiftlab.lm.scorer import LMScorer
from shiftlab.models.classifier import Classifier, Predictor
from shiftlab.models.combination import TemperatureScaled
from shiftlab.models.lit import LiTFeaturizer
from shiftlab.models.open_clip_backbone import CLIPFeaturizer
from shiftlab.models.text import TextEncoder
from shiftlab.models.timm_backbone import TimmFeaturizer
from shiftlab.runtime import log
from shiftlab.session import Session
from shiftlab.stages import default_stages
from shiftlab.store import read_records, read_run_config


def open_run(run_dir: Path) -> tuple[Session, list[dict[str, Any]]]:
    """A finished run directory, opened as a worker opens it (nothing trained or written), and
    its records.

    Raises:
        RunDirError: not a run directory, or one without records.
    """
    raw = read_run_config(run_dir)
    if not raw:
        raise RunDirError(f"{run_dir} is not a shiftlab run directory (no config.yaml)")
    records = read_records(run_dir / "records.jsonl")
    if not records:
        raise RunDirError(f"{run_dir} has no records: run it first")
    return Session(parse(raw), run_dir, default_stages(), worker=True), records


def find_predictor(session: Session, records: list[dict[str, Any]], name: str) -> Predictor:
    """The predictor of a record's model name, loaded or made again.

    Raises:
        ConfigError: no record has that model, or it is not a plain classifier.
    """
    names = list(dict.fromkeys(r["model"] for r in records if not r.get("adapter")))
    if name not in names:
        close = ", ".join(names[:12])
        raise ConfigError(f"no model named '{name}' in this run; its models: {close}")
    if name.endswith("+ts"):  # the temperature refitted on ID val: the run's exactly
        base = find_predictor(session, records, name.removesuffix("+ts"))
        scaled = temperature_scaled(base, session.benchmark.val, session.cache)
        return dataclasses.replace(scaled, model=folded(scaled.model))
    label, _, own = name.partition("/")
    if label.startswith(unlearn_key("")):
        predictor = unlearned(session, label.removeprefix(unlearn_key("")), own, name)
    else:
        predictor = curated(session, label, own) if own else session.lookup(name)
    if not isinstance(predictor.model, (Classifier, LMScorer)):
        raise ConfigError(
            f"'{name}' is a {type(predictor.model).__name__}: export takes classifiers "
            "(a featurizer and a linear head) and language models for now"
        )
    return predictor


def folded(model: TemperatureScaled) -> Classifier:
    """A temperature-scaled classifier as one classifier: its head divided by T."""
    (inner,) = model.members
    if not isinstance(inner, Classifier):
        raise ConfigError("export folds a temperature into a classifier's head only")
    head = nn.Linear(inner.head.in_features, inner.head.out_features)
    with torch.no_grad():
        head.weight.copy_(inner.head.weight / model.temperature)
        head.bias.copy_(inner.head.bias / model.temperature)
    return Classifier(inner.featurizer, head)


def unlearned(session: Session, method: str, on: str, name: str) -> Predictor:
    """``unlearn.METHOD/ON``: the run's model ``ON`` after unlearning method ``METHOD`` (or
    retrained without the forget set), made again as the run made it.

    Raises:
        ConfigError: the run has no such unlearning entry.
    """
    stage = session.stages["unlearn"]
    stage.check(session)
    session.curation = session.curation or session.plan_curation()  # a forget set by a score
    stage.plan(session)
    spec = next((s for s in stage.specs(session) if s.name == method), None)
    if spec is None or on != stage.on:
        raise ConfigError(f"no unlearning entry '{method}' of '{on}' in this run")
    original = session.lookup(stage.on)
    return Predictor(name, original.recipe, stage.model_of(session, spec), dict(original.params))


def curated(session: Session, label: str, name: str) -> Predictor:
    """``LABEL/NAME``: recipe entry ``NAME``'s predictor retrained on curated set ``LABEL``,
    made again as the run made it (the same scores, set, seed and options).

    Raises:
        ConfigError: the run has no such curated set or recipe entry.
    """
    session.curation = session.curation or session.plan_curation()
    variants = {v.label: v for v in (session.curation.variants if session.curation else [])}
    entry = name.split("[", 1)[0]
    if label not in variants or entry not in session.specs:
        raise ConfigError(f"no curated set '{label}' with recipe entry '{entry}' in this run")
    train = session.benchmark_for(variants[label].train)
    for predictor in session.produce(session.specs[entry], train):
        if predictor.name == name:
            return predictor
    raise ConfigError(f"recipe entry '{entry}' made no model '{name}' on '{label}'")


def export(run_dir: Path, name: str, out: Path) -> Path:
    """Write model ``name`` of the run in ``run_dir`` to the folder ``out``; return it."""
    check_out_dir(out, "export --out")
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out} is not empty; give a new folder")
    session, records = open_run(run_dir)
    predictor = find_predictor(session, records, name)
    model = predictor.model.eval().cpu()
    class_names = session.benchmark.class_names
    out.mkdir(parents=True, exist_ok=True)
    featurizer = getattr(model, "featurizer", model)
    if isinstance(model, LMScorer):
        info = export_lm(model, session, out)
    elif isinstance(featurizer, TextEncoder):
        info = export_text(featurizer, model.head, class_names, out)
    elif isinstance(featurizer, TimmFeaturizer):
        info = export_timm(featurizer, model.head, class_names, out)
    elif isinstance(featurizer, CLIPFeaturizer):
        info = export_open_clip(featurizer, model.head, session, out)
    elif isinstance(featurizer, LiTFeaturizer) and isinstance(featurizer.image, TimmFeaturizer):
        info = export_lit(featurizer, model.head, class_names, session, out)
    else:
        raise ConfigError(
            f"export writes text encoders (sentence-transformers), timm and open_clip models, "
            f"LiT two-towers with a timm image tower, and causal LMs; "
            f"this backbone is {type(featurizer).__name__}"
        )
    meta = {
        "shiftlab_version": __version__,
        "model": name,
        "recipe": predictor.recipe,
        "params": predictor.params,
        "class_names": class_names,
        "run_dir": str(Path(run_dir).resolve()),
        **info,
    }
    write_atomic(out / FORMAT_FILE, json.dumps(meta, indent=2, default=str) + "\n")
    card = model_card(name, meta, records, read_run_config(run_dir))
    write_atomic(out / "README.md", card)
    log(f"exported {escape(name)} ({info['format']}) to {out}")
    return out


def export_text(
    encoder: TextEncoder, head: nn.Linear, class_names: list[str], out: Path
) -> dict[str, Any]:
    """A sentence-transformers folder whose ``encode`` gives the classifier's logits."""
    st = require("sentence_transformers", "deploy")
    try:  # sentence-transformers >= 5.2; ``models`` before (deprecated since)
        from sentence_transformers.sentence_transformer import modules as models
    except ImportError:
        from sentence_transformers import models

    transformer_dir = out / "0_Transformer"
    encoder.model.save_pretrained(transformer_dir)
    encoder.tokenizer.save_pretrained(transformer_dir)
    dim = encoder.model.config.hidden_size
    modules: list[nn.Module] = [
        models.Transformer(str(transformer_dir), max_seq_length=encoder.max_length),
        models.Pooling(dim, pooling_mode="mean"),
    ]
    if encoder.normalize:
        modules.append(models.Normalize())
    dense = models.Dense(dim, len(class_names), bias=True, activation_function=nn.Identity())
    with torch.no_grad():
        dense.linear.weight.copy_(head.weight.detach().cpu())
        dense.linear.bias.copy_(head.bias.detach().cpu())
    modules.append(dense)
    st.SentenceTransformer(modules=modules, device="cpu").save(str(out))
    return {
        "format": "sentence-transformers",
        "load": "from sentence_transformers import SentenceTransformer; "
        f"logits = SentenceTransformer({str(out)!r}).encode(texts)",
        "max_length": encoder.max_length,
    }


def export_lm(scorer: LMScorer, session: Session, out: Path) -> dict[str, Any]:
    """A PEFT adapter folder (LoRA models: load the base, then ``PeftModel.from_pretrained``),
    or the whole model's ``save_pretrained`` (``AutoModelForCausalLM``), with the tokenizer and
    the task (template, label words) that turns an input into the scored prompt."""
    cfg = session.cfg
    name = cfg.backbone.name
    source = name.partition(":")[2] if name.startswith("hf_causal_lm:") else name
    base, gguf_file, _ = resolve_source(source, cfg.backbone.gguf_file)
    peft = hasattr(scorer.model, "peft_config")
    scorer.model.save_pretrained(out)
    scorer.tokenizer.save_pretrained(out)
    task = cfg.task
    words = None if task is None or task.label_words is None else task.label_words
    gguf = f", gguf_file={gguf_file!r}" if gguf_file else ""
    if peft:
        load = (
            "from transformers import AutoModelForCausalLM; from peft import PeftModel; "
            f"model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained({base!r}"
            f"{gguf}), {str(out)!r})"
        )
    else:
        load = (
            "from transformers import AutoModelForCausalLM; "
            f"model = AutoModelForCausalLM.from_pretrained({str(out)!r})"
        )
    return {
        "format": "peft" if peft else "transformers",
        "base": base,
        "gguf_file": gguf_file,
        "dequantised": bool(gguf_file),
        "template": None if task is None else task.template,
        "label_words": words,
        "shots": 0 if task is None else task.shots,
        "scoring": "each class: the sum of log p(label-word tokens | prompt), the prompt's "
        "trailing whitespace moved onto the word, word tokens without special tokens",
        "load": load,
    }


def export_open_clip(
    featurizer: CLIPFeaturizer, head: nn.Linear, session: Session, out: Path
) -> dict[str, Any]:
    """open_clip's own files: the architecture's config (``add_model_config``), the model's
    state dict (``create_model_and_transforms(..., pretrained=FILE)``) and the head over the
    normalised image embeddings, with the class prompts."""
    open_clip = require("open_clip", "clip")
    from safetensors.torch import save_file

    cfg = session.cfg.backbone
    arch = cfg.name.partition(":")[2]
    config_path, checkpoint, head_path = (
        out / f"{arch}.json",
        out / "open_clip.pt",
        out / "head.safetensors",
    )
    write_atomic(config_path, json.dumps(open_clip.get_model_config(arch), indent=2) + "\n")
    torch.save(featurizer.model.state_dict(), checkpoint)
    save_file(
        {"weight": head.weight.detach().cpu().contiguous(), "bias": head.bias.detach().cpu()},
        str(head_path),
    )
    size = f", force_image_size={cfg.image_size}" if cfg.image_size else ""
    return {
        "format": "open_clip",
        "architecture": arch,
        "image_size": cfg.image_size,
        "prompts": session.cfg.prompts,
        "load": "import open_clip, torch.nn.functional as F; "
        "from safetensors.torch import load_file; "
        f"open_clip.add_model_config({str(config_path)!r}); "
        f"model, _, preprocess = open_clip.create_model_and_transforms({arch!r}, "
        f"pretrained={str(checkpoint)!r}{size}); head = load_file({str(head_path)!r}); "
        "logits = F.normalize(model.encode_image(images), dim=-1) @ head['weight'].T + "
        "head['bias']  # images: preprocess(PIL image), stacked",
    }


def export_lit(
    featurizer: LiTFeaturizer,
    head: nn.Linear,
    class_names: list[str],
    session: Session,
    out: Path,
) -> dict[str, Any]:
    """A LiT classifier in its image tower's ecosystem: the timm image tower without a
    classifier (``model.safetensors``, timm's ``config.json``) and ``lit_head.safetensors``, the
    projection into the joint space and the head over normalised joint embeddings (the class
    prompts' embeddings, scaled). The text tower is not needed to classify; the class prompts
    are in ``shiftlab.json``."""
    from safetensors.torch import save_file

    info = export_timm(featurizer.image, None, class_names, out)
    head_path = out / "lit_head.safetensors"
    weights = {
        "projection": featurizer.image_proj.weight.detach().cpu().contiguous(),
        "weight": head.weight.detach().cpu().contiguous(),
        "bias": head.bias.detach().cpu().contiguous(),
    }
    save_file(weights, str(head_path))
    create = info["load"].split("; model = ", 1)[1]
    return {
        **info,
        "format": "lit",
        "prompts": session.cfg.prompts,
        "load": "import timm, torch.nn.functional as F; from safetensors.torch import load_file; "
        f"model = {create}; head = load_file({str(head_path)!r}); "
        "logits = F.normalize(model(images) @ head['projection'].T, dim=-1) @ head['weight'].T "
        "+ head['bias']  # images: timm's transform of each PIL image, stacked",
    }


def export_timm(
    featurizer: TimmFeaturizer, head: nn.Linear | None, class_names: list[str], out: Path
) -> dict[str, Any]:
    """A timm checkpoint with the head as its classifier (none: no classifier), and timm's
    ``config.json``."""
    timm = require("timm", "vision")
    from safetensors.torch import save_file

    net = featurizer.model
    architecture = net.pretrained_cfg.get("architecture") or type(net).__name__
    classes = len(class_names) if head is not None else 0
    full = timm.create_model(architecture, pretrained=False, num_classes=classes)
    state = dict(net.state_dict())
    if head is not None:
        classifier = full.get_classifier()
        prefix = next(n for n, m in full.named_modules() if m is classifier)
        state[f"{prefix}.weight"] = head.weight.detach().cpu()
        state[f"{prefix}.bias"] = head.bias.detach().cpu()
    full.load_state_dict(state)
    save_file(
        {k: v.contiguous() for k, v in full.state_dict().items()}, str(out / "model.safetensors")
    )
    pretrained_cfg = dict(net.pretrained_cfg)
    pretrained_cfg.update(num_classes=classes, label_names=class_names)
    pretrained_cfg.pop("file", None)
    pretrained_cfg.pop("hf_hub_id", None)
    config = {
        "architecture": architecture,
        "num_classes": classes,
        "label_names": class_names,
        "pretrained_cfg": pretrained_cfg,
    }
    write_atomic(out / "config.json", json.dumps(config, indent=2, default=str) + "\n")
    # num_classes in the overlay too: timm drops a checkpoint's classifier whose size differs
    # from the pretrained config's (1,000 ImageNet classes).
    overlay: dict[str, Any] = {"file": str(out / "model.safetensors"), "num_classes": classes}
    size = featurizer.transform.size
    if tuple(pretrained_cfg.get("input_size", ()))[-1:] != (size,):
        overlay["input_size"] = (3, size, size)  # backbone.image_size: timm preprocesses at it
    return {
        "format": "timm",
        "architecture": architecture,
        "overlay": overlay,
        "load": f"import timm; model = timm.create_model({architecture!r}, pretrained=True, "
        f"num_classes={classes}, pretrained_cfg_overlay={overlay!r})",
    }

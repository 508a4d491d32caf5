"""Command line: ``shiftlab run | report | export | predict | compare | audit | membership |
list``; it parses arguments and calls the library."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from pathlib import Path

from shiftlab import __version__
from shiftlab.errors import ConfigError, ShiftlabError
from shiftlab.registry import REGISTRIES


def _cmd_run(args: argparse.Namespace) -> int:
    from shiftlab import config, distributed
    from shiftlab.driver import run

    cfg = config.load(args.config, args.set)
    if args.executor is not None or args.address is not None:
        executor = dataclasses.replace(
            cfg.executor,
            kind=args.executor or ("ray" if args.address else cfg.executor.kind),
            address=args.address if args.address is not None else cfg.executor.address,
        )
        cfg = dataclasses.replace(cfg, executor=executor)
    if args.launcher == "accelerate" and cfg.executor.kind == "ray":
        raise ConfigError("--launcher accelerate and executor: ray do not combine; choose one")
    if args.launcher == "accelerate" and not distributed.is_distributed():
        return distributed.launch(_without_launcher(args.argv), args.num_processes)
    out = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
    run_dir = run(cfg, out)
    if distributed.is_main_process():
        print(run_dir / "report.html")
    return 0


def _without_launcher(argv: list[str]) -> list[str]:
    """The command line each launched process runs: this one without the launcher options."""
    kept: list[str] = []
    skip = False
    for item in argv:
        if skip:
            skip = False
        elif item in ("--launcher", "--num-processes"):
            skip = True
        elif not item.startswith(("--launcher=", "--num-processes=")):
            kept.append(item)
    return kept


def _cmd_audit(args: argparse.Namespace) -> int:
    from shiftlab.commands.audit import run_audits

    out = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
    print(run_audits(Path(args.config), out))
    return 0


def _cmd_membership(args: argparse.Namespace) -> int:
    from shiftlab.commands.membership import run_membership

    out = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
    print(run_membership(Path(args.config), out))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from shiftlab.report import write_report

    print(write_report(Path(args.run_dir)))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from shiftlab.commands.export import export

    print(export(Path(args.run_dir), args.model, Path(args.out)))
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from shiftlab.commands.predict import predict

    source, model = Path(args.source[0]), (args.source[1] if len(args.source) > 1 else None)
    if len(args.source) > 2:
        raise ConfigError("predict takes RUN_DIR MODEL or EXPORT_DIR")
    out = Path(args.out)
    predict(
        source, model, Path(args.input), out, text_column=args.text_column, id_column=args.id_column
    )
    print(out)
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from shiftlab.compare import compare_runs

    runs = [Path(d) for d in args.run_dirs]
    print(compare_runs(runs, Path(args.out), reference=args.reference))
    return 0


def _options(config: type | None) -> list[str]:
    if config is None:
        return []
    return [
        f"      {f.name} = {_default(f)!r}  {f.metadata.get('help', '')}".rstrip()
        for f in dataclasses.fields(config)
    ]


def _default(f: dataclasses.Field) -> object:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
        return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
    return "required"


def registry_markdown() -> str:
    """Markdown tables of every registry: name, summary, options with defaults."""
    parts = []
    for kind, registry in REGISTRIES.items():
        header = "| name | what it does | paper | options (defaults) |\n|---|---|---|---|"
        parts.append(f"### {kind}\n\n{header}")
        for entry in registry:
            fields = dataclasses.fields(entry.options) if entry.options is not None else []
            options = ", ".join(f"`{f.name}={_default(f)!r}`" for f in fields) or "none"
            paper = (
                f"arXiv [{entry.citation}](https://arxiv.org/abs/{entry.citation})"
                if entry.citation
                else ""
            )
            parts.append(f"| `{entry.name}` | {entry.summary} | {paper} | {options} |")
        parts.append("")
    return "\n".join(parts)


def config_listing(verbose: bool) -> list[str]:
    """The run config's top-level keys with their help, and (verbose) each section's fields."""
    from shiftlab.config.sections import EntrySpec, RunConfig

    lines = ["config:"]
    for f in dataclasses.fields(RunConfig):
        lines.append(f"  {f.name:<22} {f.metadata.get('help', '')}")
        section = typing.get_type_hints(RunConfig)[f.name]
        inner = [a for a in typing.get_args(section) if dataclasses.is_dataclass(a)]
        section = inner[0] if inner else section
        if verbose and dataclasses.is_dataclass(section) and section is not EntrySpec:
            lines += _options(section)
    return lines


def _cmd_list(args: argparse.Namespace) -> int:
    if args.markdown:
        print(registry_markdown())
        return 0
    if args.kind == "config":
        print("\n".join(config_listing(args.verbose)))
        return 0
    kinds = [args.kind] if args.kind else list(REGISTRIES)
    for kind in kinds:
        print(f"{kind}:")
        for entry in REGISTRIES[kind]:
            print(f"  {entry.name:<22} {entry.summary}")
            if args.verbose:
                print("\n".join(_options(entry.options)) or "      (no options)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``shiftlab`` command."""
    parser = argparse.ArgumentParser(
        prog="shiftlab",
        description="Fine-tune pretrained models and see what each recipe costs under shift.",
    )
    parser.add_argument("--version", action="version", version=f"shiftlab {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run every recipe of a config into a run directory")
    run.add_argument("config", help="YAML run config")
    run.add_argument("--out", help="run directory (default: runs/<config name>)")
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set recipes.full_ft.lr=1e-5 (repeatable)",
    )
    run.add_argument(
        "--launcher",
        choices=["none", "accelerate"],
        default="none",
        help="accelerate: data-parallel on several processes (accelerate launch)",
    )
    run.add_argument(
        "--num-processes",
        type=int,
        metavar="N",
        help="processes of --launcher accelerate (default: one per GPU)",
    )
    run.add_argument(
        "--executor",
        choices=["local", "ray"],
        help="where jobs run (default: the config's executor:, else local)",
    )
    run.add_argument(
        "--address",
        metavar="ADDR",
        help="a Ray cluster's address (implies --executor ray; default: a local Ray instance)",
    )
    run.set_defaults(func=_cmd_run)

    audit = commands.add_parser(
        "audit", help="search inputs that make a language model say a target"
    )
    audit.add_argument("config", help="YAML with backbone: and audit: sections")
    audit.add_argument("--out", help="output directory (default: runs/<config name>)")
    audit.set_defaults(func=_cmd_audit)

    membership = commands.add_parser(
        "membership", help="measure membership scores on texts whose membership is known"
    )
    membership.add_argument("config", help="YAML with backbone: and membership: sections")
    membership.add_argument("--out", help="output directory (default: runs/<config name>)")
    membership.set_defaults(func=_cmd_membership)

    report = commands.add_parser("report", help="(re)write report.html and report.md")
    report.add_argument("run_dir", help="a run directory")
    report.set_defaults(func=_cmd_report)

    export = commands.add_parser(
        "export", help="write a run's model as a folder its own library loads, with a card"
    )
    export.add_argument("run_dir", help="a run directory")
    export.add_argument(
        "model", help="a model name of the run's records, e.g. 'wise_ft[alpha=0.5]'"
    )
    export.add_argument("--out", required=True, help="a new folder for the export")
    export.set_defaults(func=_cmd_export)

    predict = commands.add_parser(
        "predict", help="predict new data with a run's model or an export"
    )
    predict.add_argument(
        "source", nargs="+", metavar="RUN_DIR MODEL | EXPORT_DIR", help="what predicts"
    )
    predict.add_argument(
        "--input", required=True, help="a CSV / JSONL of texts, or a folder of images"
    )
    predict.add_argument("--out", required=True, help="predictions file: .csv or .parquet")
    predict.add_argument("--text-column", default="text", help="the column of texts (text)")
    predict.add_argument("--id-column", default=None, help="a column of ids (default: line)")
    predict.set_defaults(func=_cmd_predict)

    compare = commands.add_parser(
        "compare", help="one report across run directories holding the same splits"
    )
    compare.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories")
    compare.add_argument("--out", required=True, help="folder for report.html and report.md")
    compare.add_argument(
        "--reference",
        help="model the paired tests compare against, RUN/MODEL or a model of the first run "
        "(default: the first run's report.reference, else full_ft)",
    )
    compare.set_defaults(func=_cmd_compare)

    listing = commands.add_parser("list", help="list recipes, adapters, datasets, backbones")
    listing.add_argument("kind", nargs="?", choices=[*REGISTRIES, "config"])
    listing.add_argument("-v", "--verbose", action="store_true", help="show options and defaults")
    listing.add_argument("--markdown", action="store_true", help="Markdown tables, for the docs")
    listing.set_defaults(func=_cmd_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: errors a user can fix print one line and exit with status 2."""
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what a launcher runs again
    try:
        return int(args.func(args))
    except ShiftlabError as exc:
        print(f"shiftlab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("shiftlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""`qlib-assets models ...`: the registry from the command line, each command with --json."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, is_dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from qlib_assets.cli_lifecycle import add_lifecycle_commands
from qlib_assets.models.states import ALIASES, STATE_TAG, STATES
from qlib_assets.settings import Settings, load_settings
from qlib_assets.terminal import console

# MLflow and the registry load when a command runs, not when the parser is built.
if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

    from qlib_assets.models.registry import ModelRegistry


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date of the form YYYY-MM-DD") from exc


def _registry(settings: Settings) -> ModelRegistry:
    from qlib_assets.models.platform import audit_log
    from qlib_assets.models.registry import ModelRegistry

    return ModelRegistry(settings.mlflow_uri, audit_log(settings))


def _version_row(mv: ModelVersion, aliases: dict[str, str] | None = None) -> dict[str, Any]:
    tags = mv.tags
    return {
        "model": mv.name,
        "version": str(mv.version),
        "state": tags.get(STATE_TAG),
        "window": tags.get("window"),
        "valid_ic": tags.get("metric.valid_ic"),
        "aliases": sorted(a for a, v in (aliases or {}).items() if v == str(mv.version)),
        "run_id": mv.run_id,
        "created": mv.creation_timestamp,
    }


def _emit(args: argparse.Namespace, payload: Any, title: str) -> None:
    if args.json:
        print(json.dumps(payload, indent=2, default=_plain))
        return
    rows = payload if isinstance(payload, list) else [payload]
    if not rows:
        console.print(f"{title}: nothing found")
        return
    table = Table(title=title)
    columns = [k for k, v in rows[0].items() if not isinstance(v, dict | list) or k == "aliases"]
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    console.print(table)
    nested = {k: v for k, v in rows[0].items() if k not in columns} if len(rows) == 1 else {}
    for key, value in nested.items():
        console.print(f"[bold]{key}[/bold]: {json.dumps(value, indent=2, default=_plain)}")


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return str(value)


def cmd_list(args: argparse.Namespace) -> int:
    registry = _registry(load_settings())
    rows = []
    for model in registry.client.search_registered_models():
        aliases = registry.aliases(model.name)
        versions = registry.search(spec=model.name)
        states: dict[str, int] = {}
        for mv in versions:
            state = mv.tags.get(STATE_TAG, "none")
            states[state] = states.get(state, 0) + 1
        rows.append(
            {
                "model": model.name,
                "versions": len(versions),
                "latest": versions[-1].version if versions else None,
                "aliases": [f"{a}=v{v}" for a, v in sorted(aliases.items())],
                "states": ", ".join(f"{k}:{v}" for k, v in sorted(states.items())),
            }
        )
    _emit(args, rows, "registered models")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    registry = _registry(load_settings())
    mv = registry.version(args.model, args.version)
    row = _version_row(mv, registry.aliases(args.model))
    row["tags"] = dict(mv.tags)
    _emit(args, row, f"{args.model} v{args.version}")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    registry = _registry(load_settings())
    rows = [asdict(e) for e in registry.history(args.model, args.version)]
    _emit(args, rows, f"history of {args.model}" + (f" v{args.version}" if args.version else ""))
    return 0


def cmd_lineage(args: argparse.Namespace) -> int:
    registry = _registry(load_settings())
    lineage = asdict(registry.lineage(args.model, args.version))
    if not args.json:
        lineage["partitions"] = {
            a: f"{len(p)} partitions" for a, p in lineage["partitions"].items()
        }
    _emit(args, lineage, f"lineage of {args.model} v{args.version}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    registry = _registry(load_settings())
    tags = dict(pair.split("=", 1) for pair in args.tag or [])
    found = registry.search(
        spec=args.spec,
        window=args.window,
        state=args.state,
        metric=args.metric,
        min_value=args.min,
        tags=tags,
    )
    aliases = {name: registry.aliases(name) for name in {mv.name for mv in found}}
    _emit(args, [_version_row(mv, aliases[mv.name]) for mv in found], "model versions")
    return 0


def cmd_transition(args: argparse.Namespace) -> int:
    from qlib_assets.models.platform import platform_specs
    from qlib_assets.models.window_training import serving_features

    settings = load_settings()
    registry = _registry(settings)
    if args.alias:
        entry = registry.set_alias(args.model, args.alias, args.version, args.actor, args.reason)
    else:
        serving = None
        if args.state == "production":
            spec = platform_specs(settings)[args.model]
            serving = serving_features(settings, spec)
        entry = registry.transition(
            args.model, args.version, args.state, args.actor, args.reason, None, serving
        )
    _emit(args, asdict(entry), "recorded")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from qlib_assets.models.platform import platform_specs, spec_windows, specs_folder
    from qlib_assets.models.tuning import tune_spec
    from qlib_assets.models.window_training import window_data
    from qlib_assets.storage.lake import Lake

    settings = load_settings()
    spec = platform_specs(settings)[args.spec]
    key = args.window
    if key is None:
        labelled = set(Lake(settings.lake_dir).days(spec.label.asset))
        trainable = [w for w in spec_windows(settings, spec) if w.data_end in labelled]
        if not trainable:
            raise SystemExit(f"{spec.ref}: no window has its train/valid labels materialized")
        key = trainable[-1].key
    window, data = window_data(settings, spec, key)
    with console.status(f"tuning {spec.ref} on window {key}: {args.trials} trials"):
        result = tune_spec(
            spec,
            window,
            data,
            n_trials=args.trials,
            timeout=args.timeout,
            tracking_uri=settings.mlflow_uri,
            specs_dir=specs_folder(settings),
            artifact_root=settings.mlflow_artifacts,
        )
    payload = {
        "spec": result.spec.ref,
        "path": str(result.path),
        "trials": result.trials,
        "best_valid_ic": result.best_value,
        "best_kwargs": result.best_kwargs,
        "mlflow_parent_run": result.parent_run_id,
    }
    _emit(args, payload, "tuning result")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from qlib_assets.models.platform import specs_folder
    from qlib_assets.models.reproduce import reproduce_version
    from qlib_assets.storage.lake import Lake

    settings = load_settings()
    with console.status(f"restoring the inputs of {args.model} v{args.version} and retraining"):
        result = reproduce_version(
            _registry(settings),
            Lake(settings.lake_dir),
            args.model,
            args.version,
            specs_dir=specs_folder(settings),
            keep_inputs=args.keep_inputs,
            rederive_with=settings if args.from_raw else None,
        )
    _emit(args, {**asdict(result), "reproduced": result.reproduced}, "reproduction")
    return 0 if result.reproduced else 1


def add_models_parser(commands: argparse._SubParsersAction) -> None:
    models = commands.add_parser("models", help="the model registry: list, show, history, ...")
    sub = models.add_subparsers(dest="models_command", required=True)

    def command(name: str, help_text: str, func: Any) -> argparse.ArgumentParser:
        parser = sub.add_parser(name, help=help_text)
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        parser.set_defaults(func=func)
        return parser

    command("list", "registered models, versions, aliases and states", cmd_list)
    show = command("show", "one version: state, window, metrics, tags", cmd_show)
    show.add_argument("model")
    show.add_argument("version")
    hist = command("history", "every state and alias change (audit table)", cmd_history)
    hist.add_argument("model")
    hist.add_argument("--version")
    lin = command("lineage", "run, input partitions and hashes, landing files", cmd_lineage)
    lin.add_argument("model")
    lin.add_argument("version")
    search = command("search", "versions by spec, window, state, metric, tag", cmd_search)
    search.add_argument("--spec")
    search.add_argument("--window")
    search.add_argument("--state", choices=STATES)
    search.add_argument("--metric", help="e.g. valid_ic")
    search.add_argument("--min", type=float, help="minimum value of --metric")
    search.add_argument("--tag", action="append", help="KEY=VALUE, repeatable")
    trans = command("transition", "move a version to a state, or set an alias", cmd_transition)
    trans.add_argument("model")
    trans.add_argument("version")
    trans.add_argument("state", nargs="?", choices=STATES)
    trans.add_argument("--alias", choices=ALIASES, help="set this alias instead of a state")
    trans.add_argument("--reason", required=True)
    trans.add_argument("--actor", default="cli")
    add_lifecycle_commands(command, _day)
    tune = command("tune", "Optuna search on one window; saves a new spec version", cmd_tune)
    tune.add_argument("spec")
    tune.add_argument("--trials", type=int, default=20)
    tune.add_argument("--timeout", type=float, default=None, help="seconds")
    tune.add_argument("--window", help="window key (default: the latest trainable)")
    rep = command(
        "reproduce", "retrain a version from its recorded input versions; compare", cmd_reproduce
    )
    rep.add_argument("model")
    rep.add_argument("version")
    rep.add_argument("--keep-inputs", type=Path, help="leave the restored inputs in this folder")
    rep.add_argument(
        "--from-raw",
        action="store_true",
        help="also recompute the inputs from the recorded raw_bars versions and compare",
    )

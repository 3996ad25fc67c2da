"""`qlib-assets models approve|gate|promote|champion`: lifecycle decisions from the command line."""

import argparse
from collections.abc import Callable
from dataclasses import asdict
from datetime import date
from typing import Any

from qlib_assets.settings import load_settings


def cmd_approve(args: argparse.Namespace) -> int:
    from qlib_assets.cli_models import _emit
    from qlib_assets.lifecycle.approvals import record_approval

    entry = record_approval(load_settings(), args.model, args.version, args.by, args.reason)
    _emit(args, asdict(entry), f"approval of {args.model} v{args.version}")
    return 0


def cmd_gate(args: argparse.Namespace) -> int:
    from qlib_assets.cli_models import _emit
    from qlib_assets.lifecycle.gates import gate_version
    from qlib_assets.models.platform import platform_specs

    settings = load_settings()
    report = gate_version(settings, platform_specs(settings)[args.model], args.version)
    rows = [{"gate": r.name, "passed": r.passed, "evidence": r.evidence} for r in report.results]
    _emit(args, rows, report.summary())
    return 0 if report.passed else 1


def cmd_promote(args: argparse.Namespace) -> int:
    from qlib_assets.cli_models import _emit
    from qlib_assets.lifecycle.champion import next_session_to_serve
    from qlib_assets.lifecycle.promotion import promote
    from qlib_assets.models.platform import platform_specs

    settings = load_settings()
    spec = platform_specs(settings)[args.model]
    effective = args.effective_from or next_session_to_serve(settings, spec, args.version)
    outcome = promote(
        settings,
        spec,
        args.version,
        effective_from=effective,
        actor=args.actor,
        reason=args.reason,
        evidence={"policy": "manual"},
    )
    payload = {k: v for k, v in asdict(outcome).items() if k != "entry"}
    _emit(args, {**payload, "effective_from": effective.isoformat()}, "promotion")
    return 0 if outcome.promoted else 1


def cmd_champion(args: argparse.Namespace) -> int:
    from qlib_assets.cli_models import _emit
    from qlib_assets.lifecycle.champion import champion, served_version
    from qlib_assets.models.platform import platform_specs

    settings = load_settings()
    if args.session is None:
        _emit(args, {"model": args.model, "champion": champion(settings, args.model)}, "champion")
        return 0
    served = served_version(settings, platform_specs(settings)[args.model], args.session)
    _emit(args, {"model": args.model, "session": args.session, **asdict(served)}, "served by")
    return 0


def add_lifecycle_commands(
    command: Callable[[str, str, Any], argparse.ArgumentParser],
    day: Callable[[str], date],
) -> None:
    approve = command("approve", "record an approval of a version for production", cmd_approve)
    approve.add_argument("model")
    approve.add_argument("version")
    approve.add_argument("--by", required=True, help="who approves")
    approve.add_argument("--reason", required=True)
    gate = command("gate", "run the gates of a candidate (validated or rejected)", cmd_gate)
    gate.add_argument("model")
    gate.add_argument("version")
    promote = command(
        "promote", "make a version the champion (needs approval in prod)", cmd_promote
    )
    promote.add_argument("model")
    promote.add_argument("version")
    promote.add_argument("--reason", required=True)
    promote.add_argument("--actor", default="cli")
    promote.add_argument(
        "--effective-from", type=day, help="first session it serves (default: the next one)"
    )
    champ = command(
        "champion", "the champion now, or the version that served a session", cmd_champion
    )
    champ.add_argument("model")
    champ.add_argument("--session", type=day)


def cmd_simulate(args: argparse.Namespace) -> int:
    from rich.table import Table

    from qlib_assets.lifecycle.simulate import simulate
    from qlib_assets.terminal import console

    settings = load_settings()
    with console.status(f"replaying {args.start} .. {args.end}") as status:

        def progress(day: date, events: list[str]) -> None:
            status.update(f"replaying {day} (to {args.end})")
            for event in events:
                console.print(f"{day} {event}")

        result = simulate(settings, args.start, args.end, delay=args.delay, on_session=progress)
    table = Table(title=f"track record {args.start} .. {args.end}")
    for column in ("spec", "sessions", "scored", "mean daily IC", "versions served"):
        table.add_column(column)
    for spec in sorted(set(result.track["spec"].to_list())):
        rows = result.track.filter(result.track["spec"] == spec)
        ic = rows["ic"].drop_nulls()
        table.add_row(
            spec,
            str(rows.height),
            str(rows["served_version"].is_not_null().sum()),
            f"{ic.mean():.4f}" if ic.len() else "-",
            ", ".join(sorted({v for v in rows["served_version"].to_list() if v}, key=int)),
        )
    console.print(table)
    console.print(f"events: {result.counts()}")
    console.print(f"track record: {result.settings.root / 'track_record.parquet'}")
    return 0


def add_simulate_parser(commands: argparse._SubParsersAction, day: Callable[[str], date]) -> None:
    sim = commands.add_parser(
        "simulate", help="replay history one session at a time through the daily loop's code"
    )
    sim.add_argument("--start", type=day, required=True)
    sim.add_argument("--end", type=day, required=True)
    sim.add_argument(
        "--delay", type=int, default=0, help="sessions between a window's labels and its training"
    )
    sim.set_defaults(func=cmd_simulate)

"""`qlib-assets data ...`: kept partition versions, point-in-time restore, retention."""

import argparse
import getpass
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from qlib_assets.settings import load_settings
from qlib_assets.storage.lake import Lake, platform_lake
from qlib_assets.storage.versions import PartitionVersion, Retention
from qlib_assets.terminal import console


def _timestamp(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time, e.g. 2024-05-06T14:30:00Z"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date of the form YYYY-MM-DD") from exc


def _known_asset(lake: Lake, asset: str) -> None:
    known = sorted(set(lake.versions.assets()) | set(lake.assets()))
    if asset not in known:
        names = ", ".join(known) or "-"
        raise ValueError(f"unknown asset {asset!r} in {lake.root}; known: {names}")


def _state(version: PartitionVersion, latest: PartitionVersion) -> str:
    if version.deleted:
        return "deleted"
    if version.pruned_ns is not None:
        return "pruned"
    return "current" if version.seq == latest.seq else "superseded"


def cmd_history(args: argparse.Namespace) -> int:
    lake = platform_lake(load_settings())
    _known_asset(lake, args.asset)
    history = lake.versions.history(args.asset, args.date)
    if not history:
        raise ValueError(f"{args.asset} has no recorded version of partition {args.date}")
    rows = [
        {
            "sha256": v.sha256,
            "written_at": v.written_at.isoformat(),
            "run_id": v.run_id,
            "bytes": v.size,
            "state": _state(v, history[-1]),
        }
        for v in history
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title=f"{args.asset} {args.date}: {len(rows)} version(s)")
    for column in ("written_at", "sha256", "run_id", "bytes", "state"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["written_at"], row["sha256"][:16], row["run_id"], f"{row['bytes']:,}", row["state"]
        )
    console.print(table)
    return 0


def _progress() -> Progress:
    """On stderr, so that ``--json`` output on stdout stays parseable."""
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )


def cmd_restore(args: argparse.Namespace) -> int:
    from qlib_assets.storage.restore import RestoreError, restore_in_place, restore_to

    settings = load_settings()
    lake = platform_lake(settings)
    if args.in_place and args.to is not None:
        raise RestoreError("--in-place restores the platform's own lake; drop --to")
    with _progress() as progress:
        task = progress.add_task(f"restoring as of {args.as_of.isoformat()}", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        if args.in_place:
            if not args.reason:
                raise RestoreError("--in-place needs --reason (the restore is audited)")
            result = restore_in_place(
                lake,
                args.as_of,
                settings.qlib_data_dir,
                settings.calendar,
                args.actor,
                args.reason,
                advance,
            )
        else:
            stamp = args.as_of.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            target = args.to or settings.root / "restores" / stamp
            result = restore_to(
                lake, args.as_of, target, settings.calendar, advance, args.actor, args.reason or ""
            )
    payload: dict[str, Any] = {
        "as_of": result.as_of.isoformat(),
        "target": str(result.target),
        "partitions": result.partitions,
        "changed": result.changed,
        "provider_sessions": result.provider_sessions,
    }
    if args.json:
        print(json.dumps(payload, indent=2))
    else:
        parts = ", ".join(f"{a} {n}" for a, n in result.partitions.items())
        console.print(
            f"restored the lake as of {payload['as_of']} to {result.target} ({parts}); "
            f"Qlib provider: {result.provider_sessions} sessions"
        )
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    settings = load_settings()
    kept = settings.versions
    retention = Retention(
        args.keep_days if args.keep_days is not None else kept.keep_days,
        args.max_bytes if args.max_bytes is not None else kept.max_bytes,
    )
    store = platform_lake(settings).versions
    result = store.prune(retention)
    superseded, total = store.usage()
    payload = {
        "pruned_versions": result.versions,
        "objects_deleted": result.objects,
        "bytes_freed": result.bytes_freed,
        "superseded_bytes": superseded,
        "kept_bytes": total,
    }
    if args.json:
        print(json.dumps(payload, indent=2))
    else:
        console.print(", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in payload.items()))
    return 0


def cmd_restores(args: argparse.Namespace) -> int:
    rows = platform_lake(load_settings()).versions.restores()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title="restores")
    for column in ("at", "as_of", "target", "in_place", "actor", "reason", "changed"):
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    console.print(table)
    return 0


def add_data_parser(commands: argparse._SubParsersAction) -> None:
    data = commands.add_parser("data", help="lake versions: history, point-in-time restore, prune")
    sub = data.add_subparsers(dest="data_command", required=True)

    def command(name: str, help_text: str, func: Any) -> argparse.ArgumentParser:
        parser = sub.add_parser(name, help=help_text)
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        parser.set_defaults(func=func)
        return parser

    hist = command("history", "every version of one partition", cmd_history)
    hist.add_argument("asset")
    hist.add_argument("date", type=_day)
    restore = command(
        "restore", "the lake and Qlib provider as of a time, into a new folder", cmd_restore
    )
    restore.add_argument(
        "--as-of",
        type=_timestamp,
        required=True,
        help="ISO 8601 time; without a zone it is UTC",
    )
    restore.add_argument(
        "--to", type=Path, help="empty or new folder (default: HOME/restores/<as-of>)"
    )
    restore.add_argument(
        "--in-place",
        action="store_true",
        help="restore the platform's own lake and provider (audited; newer versions are kept)",
    )
    restore.add_argument("--reason", help="why (required with --in-place)")
    restore.add_argument("--actor", default=getpass.getuser())
    prune = command("prune", "apply the retention setting (or the bounds given)", cmd_prune)
    prune.add_argument("--keep-days", type=float)
    prune.add_argument("--max-bytes", type=int)
    command("restores", "the restore audit", cmd_restores)

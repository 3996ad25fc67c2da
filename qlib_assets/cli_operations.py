"""`qlib-assets tasks`, `qlib-assets worker`, `qlib-assets capacity`: operations commands."""

import argparse
import os
from typing import TYPE_CHECKING

from rich.table import Table

from qlib_assets.settings import Settings, load_settings
from qlib_assets.terminal import console

if TYPE_CHECKING:
    import dagster as dg

    from qlib_assets.models.specs import ModelSpec

STYLE = {"done": "green", "part_done": "yellow", "failed": "red", "running": "cyan"}


def cmd_tasks(args: argparse.Namespace) -> int:
    from qlib_assets.instance import embedded_instance
    from qlib_assets.models.platform import platform_specs

    settings = load_settings()
    specs = platform_specs(settings)
    if args.spec and args.spec not in specs:
        raise KeyError(f"no spec {args.spec!r}; known: {', '.join(sorted(specs))}")
    with embedded_instance(settings) as instance:
        _print_tasks(instance, settings, specs, args)
    return 0


def _print_tasks(
    instance: "dg.DagsterInstance",
    settings: Settings,
    specs: "dict[str, ModelSpec]",
    args: argparse.Namespace,
) -> None:
    import dagster as dg

    from qlib_assets.models.platform import spec_windows
    from qlib_assets.operations.tasks import window_statuses

    for name, spec in sorted(specs.items()):
        if args.spec and name != args.spec:
            continue
        keys = [w.key for w in spec_windows(settings, spec)]
        statuses = window_statuses(
            instance, f"model_{name}", dg.StaticPartitionsDefinition(keys), keys
        )
        counts = ", ".join(f"{k} {v}" for k, v in sorted(statuses.counts().items()))
        console.print(f"[bold]model_{name}[/bold]: {statuses.overall} ({counts})")
        shown = [(k, s) for k, s in statuses.windows.items() if args.all or s != "waiting"]
        if shown:
            table = Table("window", "status")
            for key, status in shown:
                table.add_row(key, f"[{STYLE.get(status, 'white')}]{status}[/]")
            console.print(table)


def cmd_worker(args: argparse.Namespace) -> int:
    from qlib_assets.instance import prepare_dagster_home
    from qlib_assets.operations.deployment import celery_worker_command

    settings = load_settings()
    if settings.operations.executor != "celery":
        console.print(
            f"[yellow]note:[/yellow] operations.executor is {settings.operations.executor!r}; "
            "runs only reach this worker when it is 'celery'"
        )
    prepare_dagster_home(settings)
    command = celery_worker_command(
        settings.operations, args.name, args.concurrency, args.autoscale_min, python="python"
    )
    console.print(" ".join(command))
    if args.print_only:
        return 0
    os.execvp(command[0], command)
    return 0  # unreachable: execvp replaces the process


def cmd_capacity(args: argparse.Namespace) -> int:
    from qlib_assets.operations.capacity import machine_capacity

    capacity = machine_capacity()
    table = Table("", "value", title="sized from this machine")
    for field, value in capacity.__dict__.items():
        table.add_row(field, str(value))
    console.print(table)
    return 0


def add_operations_parser(commands: argparse._SubParsersAction) -> None:
    tasks = commands.add_parser(
        "tasks", help="rolling-training task statuses (waiting/running/done/part_done)"
    )
    tasks.add_argument("--spec", help="one spec only")
    tasks.add_argument("--all", action="store_true", help="also list waiting windows")
    tasks.set_defaults(func=cmd_tasks)

    worker = commands.add_parser("worker", help="start a Celery worker for the platform's queue")
    worker.add_argument("--name", default="qlib-assets")
    worker.add_argument("--concurrency", type=int, default=1, help="worker processes (maximum)")
    worker.add_argument(
        "--autoscale-min",
        type=int,
        default=None,
        help="scale down to this many processes when idle (0 allowed); enables autoscale",
    )
    worker.add_argument("--print-only", action="store_true", help="print the command, exit")
    worker.set_defaults(func=cmd_worker)

    capacity = commands.add_parser("capacity", help="concurrency sized from this machine")
    capacity.set_defaults(func=cmd_capacity)

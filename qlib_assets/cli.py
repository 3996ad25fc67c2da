"""The `qlib-assets` command."""

import argparse
import sys
import time
import warnings
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from rich.console import Console
from rich.table import Table

from qlib_assets.cli_data import add_data_parser
from qlib_assets.cli_explain import add_explain_parser
from qlib_assets.cli_lifecycle import add_simulate_parser
from qlib_assets.cli_models import add_models_parser
from qlib_assets.cli_operations import add_operations_parser
from qlib_assets.cli_serving import add_serving_parser
from qlib_assets.demo_spec import DemoSpec
from qlib_assets.settings import Settings, load_settings
from qlib_assets.terminal import console

DEMO = DemoSpec()


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date of the form YYYY-MM-DD") from exc


def _generate(
    out: Path,
    instruments: int,
    start: date,
    end: date,
    seed: int,
    fmt: str = "parquet",
    layout: str = "per-day",
    shift_date: date | None = None,
    oracle: bool = False,
    calendar: str = "XSHG",
) -> int:
    from qlib_assets.market.synthetic import MarketSpec, generate_market, write_landing

    spec = MarketSpec(
        instruments=instruments,
        start=start,
        end=end,
        seed=seed,
        calendar=calendar,
        shift_date=shift_date,
    )
    started = time.perf_counter()
    with console.status(f"generating {instruments} instruments {start} .. {end}"):
        market = generate_market(spec)
    console.print(
        f"generated {market.bars.height:,} bars over {len(market.sessions)} sessions "
        f"in {time.perf_counter() - started:.1f}s"
    )
    written = write_landing(market, out, fmt, layout, oracle=oracle, progress=True)  # type: ignore[arg-type]
    console.print(f"wrote {len(written)} files to {out}")
    return market.bars.height


def cmd_generate_market(args: argparse.Namespace) -> int:
    _generate(
        args.out,
        args.instruments,
        args.start,
        args.end,
        args.seed,
        args.format,
        args.layout,
        args.shift_date,
        args.oracle,
        args.calendar,
    )
    return 0


def _range_keys(settings: Settings, start: date, end: date) -> tuple[str, str]:
    from qlib_assets.calendar import sessions

    days = sessions(settings.calendar, max(start, settings.start_date), end)
    if not days:
        raise SystemExit(f"no {settings.calendar} sessions between {start} and {end}")
    return days[0].isoformat(), days[-1].isoformat()


def cmd_materialize(args: argparse.Namespace) -> int:
    from qlib_assets.defs.build import build_definitions
    from qlib_assets.instance import embedded_instance
    from qlib_assets.orchestration import materialize_range

    settings = load_settings()
    instance = embedded_instance(settings)
    first, last = _range_keys(settings, args.start, args.end)
    with console.status(f"materializing {', '.join(args.assets)} for {first} .. {last}"):
        result = materialize_range(
            build_definitions(settings), instance, args.assets, first, last, raise_on_error=False
        )
    console.print(f"run {result.run_id}: {'success' if result.success else 'FAILURE'}")
    return 0 if result.success else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from qlib_assets.demo import run_demo

    spec = DemoSpec(args.instruments, args.start, args.end, args.seed, args.windows)
    summary = run_demo(load_settings(), spec, console)
    _print_summary(summary)
    return 0


def _print_summary(summary: dict[str, object]) -> None:
    table = Table(title="qlib-assets demo", show_header=False)
    for section, values in summary.items():
        if isinstance(values, dict):
            for key, value in values.items():
                table.add_row(f"{section}.{key}", _flat(value))
        else:
            table.add_row(section, str(values))
    console.print(table)


def _flat(value: object) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {_flat(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "; ".join(_flat(v) for v in value)
    return str(value)


def cmd_prepare_instance(args: argparse.Namespace) -> int:
    from qlib_assets.instance import prepare_dagster_home

    print(prepare_dagster_home(load_settings()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qlib-assets", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    gen = commands.add_parser("generate-market", help="write a synthetic market as landing files")
    gen.add_argument("--out", type=Path, required=True)
    gen.add_argument("--instruments", type=int, default=DEMO.instruments)
    gen.add_argument("--start", type=_day, default=DEMO.start)
    gen.add_argument("--end", type=_day, default=DEMO.end)
    gen.add_argument("--seed", type=int, default=DEMO.seed)
    gen.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    gen.add_argument("--layout", choices=["per-day", "per-instrument"], default="per-day")
    gen.add_argument("--shift-date", type=_day, default=None, help="regime shift from this date")
    gen.add_argument("--oracle", action="store_true", help="also write planted expected returns")
    gen.add_argument("--calendar", default="XSHG")
    gen.set_defaults(func=cmd_generate_market)

    demo = commands.add_parser("demo", help="generate a market and materialize the graph")
    demo.add_argument("--instruments", type=int, default=DEMO.instruments)
    demo.add_argument("--start", type=_day, default=DEMO.start)
    demo.add_argument("--end", type=_day, default=DEMO.end)
    demo.add_argument("--seed", type=int, default=DEMO.seed)
    demo.add_argument(
        "--windows", type=int, default=DEMO.windows, help="rolling windows trained per spec"
    )
    demo.set_defaults(func=cmd_demo)

    mat = commands.add_parser("materialize", help="materialize assets for a session range")
    mat.add_argument("assets", nargs="+")
    mat.add_argument("--start", type=_day, required=True)
    mat.add_argument("--end", type=_day, required=True)
    mat.set_defaults(func=cmd_materialize)

    add_models_parser(commands)
    add_serving_parser(commands)
    add_operations_parser(commands)
    add_data_parser(commands)
    add_explain_parser(commands)

    add_simulate_parser(commands, _day)
    prep = commands.add_parser("prepare-instance", help="set up DAGSTER_HOME; print its path")
    prep.set_defaults(func=cmd_prepare_instance)
    return parser


def _quiet_library_warnings() -> None:
    import dagster as dg

    # Dagster marks several APIs the graph uses (backfill policies, observable sources) beta.
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    # Qlib's processors trip pandas' chained-assignment and deprecation warnings on every window.
    warnings.filterwarnings("ignore", module=r"qlib\.")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_library_warnings()
    try:
        return int(args.func(args))
    except (ValueError, KeyError, FileNotFoundError) as exc:
        Console(stderr=True).print(f"[red]error:[/red] {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""The `qlib-assets` command."""

import argparse
import json
import sys
import time
import warnings
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import dagster as dg
from rich.console import Console
from rich.table import Table

from qlib_assets.cli_models import add_models_parser
from qlib_assets.settings import Settings, load_settings

console = Console()

DEMO_INSTRUMENTS = 300
DEMO_START = date(2021, 1, 4)
DEMO_END = date(2024, 12, 31)
DEMO_SEED = 7


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
    from qlib_assets.market.generator import MarketSpec, generate_market, write_landing

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
    from qlib_assets.definitions import build_definitions
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
    from qlib_assets.calendar import sessions, shift_sessions
    from qlib_assets.definitions import build_definitions
    from qlib_assets.features.tables import LABEL_HORIZON
    from qlib_assets.instance import embedded_instance
    from qlib_assets.orchestration import materialize_range
    from qlib_assets.summary import feature_summary

    settings = load_settings()
    instance = embedded_instance(settings)
    timings: dict[str, float] = {}

    started = time.perf_counter()
    rows = _generate(
        settings.landing_dir, args.instruments, args.start, args.end, args.seed, oracle=True
    )
    timings["generate_market_s"] = round(time.perf_counter() - started, 1)

    defs = build_definitions(settings)
    first, last = _range_keys(settings, args.start, args.end)
    summary: dict[str, object] = {
        "home": str(settings.root),
        "market": {
            "instruments": args.instruments,
            "first_session": first,
            "last_session": last,
            "sessions": len(sessions(settings.calendar, args.start, args.end)),
            "bars": rows,
        },
    }
    label_last = shift_sessions(settings.calendar, date.fromisoformat(last), -LABEL_HORIZON)
    steps = [
        ("market data", ["raw_bars", "qlib_dataset"], first, last),
        ("features", ["indicators", "alpha158"], first, last),
        ("labels", ["labels"], first, label_last.isoformat()),
    ]
    for label, assets, start_key, end_key in steps:
        started = time.perf_counter()
        with console.status(
            f"materializing {label} ({', '.join(assets)}) {start_key} .. {end_key}"
        ):
            result = materialize_range(
                defs, instance, assets, start_key, end_key, log_level="WARNING"
            )
        elapsed = round(time.perf_counter() - started, 1)
        timings[f"{label.replace(' ', '_')}_s"] = elapsed
        sessions_done = len(result.asset_materializations_for_node(assets[0]))
        console.print(
            f"[green]✓[/green] {label}: one run ({result.run_id[:8]}) for "
            f"{sessions_done} sessions in {elapsed}s"
        )
    summary["features"] = feature_summary(settings, date.fromisoformat(last))
    summary["timings"] = timings
    summary["dagster"] = {
        "dagster_home": str(settings.dagster_home),
        "ui": "make ui  ->  http://127.0.0.1:3000",
    }
    summary["qlib_provider"] = str(settings.qlib_data_dir)
    _print_summary(summary)
    out = settings.root / "demo_summary.json"
    out.write_text(json.dumps(summary, indent=2))
    console.print(f"summary written to {out}")
    return 0


def _print_summary(summary: dict[str, object]) -> None:
    table = Table(title="qlib-assets demo", show_header=False)
    for section, values in summary.items():
        if isinstance(values, dict):
            for key, value in values.items():
                table.add_row(f"{section}.{key}", str(value))
        else:
            table.add_row(section, str(values))
    console.print(table)


def cmd_prepare_instance(args: argparse.Namespace) -> int:
    from qlib_assets.instance import prepare_dagster_home

    print(prepare_dagster_home(load_settings()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qlib-assets", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    gen = commands.add_parser("generate-market", help="write a synthetic market as landing files")
    gen.add_argument("--out", type=Path, required=True)
    gen.add_argument("--instruments", type=int, default=DEMO_INSTRUMENTS)
    gen.add_argument("--start", type=_day, default=DEMO_START)
    gen.add_argument("--end", type=_day, default=DEMO_END)
    gen.add_argument("--seed", type=int, default=DEMO_SEED)
    gen.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    gen.add_argument("--layout", choices=["per-day", "per-instrument"], default="per-day")
    gen.add_argument("--shift-date", type=_day, default=None, help="regime shift from this date")
    gen.add_argument("--oracle", action="store_true", help="also write planted expected returns")
    gen.add_argument("--calendar", default="XSHG")
    gen.set_defaults(func=cmd_generate_market)

    demo = commands.add_parser("demo", help="generate a market and materialize the graph")
    demo.add_argument("--instruments", type=int, default=DEMO_INSTRUMENTS)
    demo.add_argument("--start", type=_day, default=DEMO_START)
    demo.add_argument("--end", type=_day, default=DEMO_END)
    demo.add_argument("--seed", type=int, default=DEMO_SEED)
    demo.set_defaults(func=cmd_demo)

    mat = commands.add_parser("materialize", help="materialize assets for a session range")
    mat.add_argument("assets", nargs="+")
    mat.add_argument("--start", type=_day, required=True)
    mat.add_argument("--end", type=_day, required=True)
    mat.set_defaults(func=cmd_materialize)

    add_models_parser(commands)

    prep = commands.add_parser("prepare-instance", help="set up DAGSTER_HOME; print its path")
    prep.set_defaults(func=cmd_prepare_instance)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ValueError, KeyError, FileNotFoundError) as exc:
        Console(stderr=True).print(f"[red]error:[/red] {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())

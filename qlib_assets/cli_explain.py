"""`qlib-assets explain SPEC --date D [--instrument I]`: why a spec scored what it did.

Without ``--instrument``: the session's global importance (mean |SHAP|) per factor family and
per feature. With it: that prediction's largest SHAP contributions and LIME's local weights.
"""

import argparse
import json
from datetime import date

from rich.table import Table

from qlib_assets.settings import load_settings
from qlib_assets.terminal import console


def cmd_explain(args: argparse.Namespace) -> int:
    from qlib_assets.explain.families import global_importance
    from qlib_assets.explain.sessions import explain_instance, explain_session, family_table

    settings = load_settings()
    if args.instrument:
        found = explain_instance(settings, args.spec, args.date, args.instrument, args.top)
        payload = {
            "spec": found.spec,
            "date": found.day.isoformat(),
            "instrument": found.instrument,
            "model": found.model_uri,
            "score": found.score,
            "base_value": found.base_value,
            "shap_method": found.shap_method,
            "shap": found.shap.to_dicts(),
            "lime": found.lime.to_dicts(),
            "lime_intercept": found.lime_intercept,
            "lime_r2": found.lime_r2,
        }
        if args.json:
            print(json.dumps(payload, indent=2))
            return 0
        console.print(
            f"{found.spec} {found.day} {found.instrument}: score {found.score:.6f} = base "
            f"{found.base_value:.6f} + contributions ({found.shap_method}; model {found.model_uri})"
        )
        _table("SHAP: largest contributions", found.shap.rows(), ["feature", "value", "contrib"])
        _table(
            f"LIME: local linear weights (intercept {found.lime_intercept:.6f}, "
            f"R² {found.lime_r2:.3f})",
            found.lime.rows(),
            ["condition", "weight"],
        )
        return 0
    contributions = explain_session(settings, args.spec, args.date)
    families = family_table(contributions)
    features = global_importance(contributions.long()).head(args.top)
    if args.json:
        print(json.dumps({"families": families.to_dicts(), "features": features.to_dicts()}))
        return 0
    console.print(
        f"{args.spec} {args.date}: {contributions.keys.height} instruments, "
        f"{contributions.method}, max additivity error {contributions.max_additivity_error:.2g}"
    )
    _table("mean |SHAP| per family", families.rows(), ["family", "mean |SHAP|"])
    _table("mean |SHAP| per feature", features.rows(), ["feature", "mean |SHAP|"])
    return 0


def _table(title: str, rows: list[tuple[object, ...]], columns: list[str]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(f"{v:.6g}" if isinstance(v, float) else str(v) for v in row))
    console.print(table)


def add_explain_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("explain", help="SHAP and LIME explanations of a spec's scores")
    parser.add_argument("spec")
    parser.add_argument("--date", type=date.fromisoformat, required=True)
    parser.add_argument("--instrument", help="one prediction: SHAP and LIME for it")
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=cmd_explain)

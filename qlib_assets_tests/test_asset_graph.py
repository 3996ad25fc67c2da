"""The asset graph against its reviewed snapshot: asset keys, partitions, dependencies with
their partition mappings, checks, automation conditions, sensors and schedules.

An unintended change to the graph fails here; after an intended one, regenerate the snapshot
and commit it with the change, so the difference shows in review:

    QLIB_ASSETS_UPDATE_SNAPSHOT=1 .venv/bin/pytest -q qlib_assets_tests/test_asset_graph.py
"""

import difflib
import json
import os
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg

from qlib_assets.defs.build import build_definitions
from qlib_assets.settings import Settings

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"
UPDATE = "QLIB_ASSETS_UPDATE_SNAPSHOT"


def _condition(condition: dg.AutomationCondition | None) -> str | None:
    """A condition tree as text: each node's label (or operator name) and its children."""
    if condition is None:
        return None
    name = condition.get_label() or condition.name
    children = [_condition(child) for child in condition.children]
    return f"{name}({', '.join(str(c) for c in children)})" if children else name


def describe(defs: dg.Definitions) -> dict[str, Any]:
    graph = defs.resolve_asset_graph()
    assets: dict[str, Any] = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        deps = {
            parent.to_user_string(): (
                repr(graph.get_partition_mapping(key, parent))
                if node.partitions_def is not None and graph.get(parent).partitions_def is not None
                else None
            )
            for parent in sorted(node.parent_keys, key=lambda k: k.to_user_string())
        }
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "partitions": None if node.partitions_def is None else str(node.partitions_def),
            "deps": deps,
            "automation": _condition(node.automation_condition),
            "observable": node.is_observable,
        }
    checks = sorted(
        f"{check.asset_key.to_user_string()}:{check.name}" for check in graph.asset_check_keys
    )
    return {
        "assets": assets,
        "checks": checks,
        "sensors": sorted(sensor.name for sensor in defs.sensors or ()),
        "schedules": sorted(schedule.name for schedule in defs.schedules or ()),
    }


def test_asset_graph_matches_its_snapshot(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", start_date=date(2024, 1, 2))
    # Resolving the graph reads the current instance's state storage: an instance of this
    # test's own, not one an earlier test left behind.
    with dg.instance_for_test(temp_dir=str(tmp_path)):
        graph = describe(build_definitions(settings))
    current = json.dumps(graph, indent=2, sort_keys=True) + "\n"
    if os.environ.get(UPDATE):
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(current)
    expected = SNAPSHOT.read_text() if SNAPSHOT.is_file() else ""
    diff = "".join(
        difflib.unified_diff(
            expected.splitlines(keepends=True),
            current.splitlines(keepends=True),
            fromfile=str(SNAPSHOT),
            tofile="current graph",
        )
    )
    assert not diff, (
        f"the asset graph differs from its snapshot; if the change is intended, run\n"
        f"  {UPDATE}=1 .venv/bin/pytest -q qlib_assets_tests/test_asset_graph.py\n"
        f"and commit {SNAPSHOT.name}\n{diff}"
    )

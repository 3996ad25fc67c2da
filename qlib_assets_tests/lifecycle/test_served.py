"""The champion serves, rows name their version, and fallback leaves no session unscored."""

from datetime import date

import polars as pl

from qlib_assets.lifecycle.gates import gate_version
from qlib_assets.lifecycle.promotion import promote
from qlib_assets.lifecycle.registry_access import registry_of
from qlib_assets.lifecycle.served import SERVED_SCHEMA, serve_predictions
from qlib_assets.settings import Settings
from qlib_assets_tests.lifecycle.conftest import Template


def _promote_both(home: Settings, template: Template) -> tuple[date, date]:
    starts = []
    for version in template.versions:
        assert gate_version(home, template.spec, version).passed
        tags = registry_of(home).version(template.spec.name, version).tags
        starts.append(date.fromisoformat(tags["window"]))
        promote(home, template.spec, version, effective_from=starts[-1], actor="t", reason="r")
    return starts[0], starts[1]


def test_archiving_the_champion_mid_stream_leaves_no_session_unscored(
    home: Settings, template: Template
) -> None:
    v1, v2 = template.versions
    start1, start2 = _promote_both(home, template)
    days = [d for d in template.market.sessions if start1 <= d][:70]
    served = serve_predictions(home, template.spec, days)
    assert served.frame.schema == pl.Schema(SERVED_SCHEMA)
    assert served.skipped == {} and served.fallbacks == []
    assert {d: v for d, v in served.used.items() if d < start2} == {
        d: v1 for d in days if d < start2
    }
    assert {served.used[d] for d in days if d >= start2} == {v2}
    versions = served.frame.group_by("date").agg(pl.col("model_version").unique())
    assert all(len(v) == 1 for v in versions.get_column("model_version").to_list())

    # A backfill of a sub-range gives exactly the same rows.
    again = serve_predictions(home, template.spec, days[20:50])
    expected = served.frame.filter(pl.col("date").is_between(days[20], days[49]))
    assert again.frame.equals(expected)

    registry_of(home).transition(template.spec.name, v2, "archived", "ops", "bad data found")
    after = serve_predictions(home, template.spec, days)
    assert after.skipped == {}
    assert {after.used[d] for d in days if d >= start2} == {v1}
    assert [(f.primary, f.used) for f in after.fallbacks] == [(v2, v1)]
    rows = [e for e in registry_of(home).history(template.spec.name) if e.subject == "fallback"]
    assert rows and rows[-1].evidence["primary"] == v2 and "archived" in rows[-1].evidence["errors"]
    # Sessions before v2 took over are still served by v1 as before: nothing to fall back.
    assert after.frame.filter(pl.col("date") < start2).equals(
        served.frame.filter(pl.col("date") < start2)
    )

    registry_of(home).transition(template.spec.name, v1, "archived", "ops", "also bad")
    none_left = serve_predictions(home, template.spec, days[-5:])
    assert none_left.frame.is_empty()
    assert all("no production version could score" in r for r in none_left.skipped.values())

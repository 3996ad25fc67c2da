"""The rolling comparison: specs and window types scored on the same test sessions."""

from qlib_assets.evaluation.rolling_comparison import compare_rolling, plot_comparison
from qlib_assets.models.platform import platform_sessions, spec_windows
from qlib_assets.models.specs import load_specs
from qlib_assets.settings import Settings
from qlib_assets.storage.lake import Lake
from qlib_assets_tests.lifecycle.conftest import Template


def test_linear_expanding_and_sliding_on_the_same_sessions(
    home: Settings, template: Template
) -> None:
    linear = load_specs()["linear_alpha158"].model_copy(update={"rolling": template.spec.rolling})
    windows = spec_windows(home, linear)
    start, end = windows[1].test[0], min(windows[2].test[1], template.market.sessions[-3])
    result = compare_rolling(
        Lake(home.lake_dir), {"linear": linear}, platform_sessions(home), start, end
    )
    names = [s.name for s in result.scores]
    assert names == ["linear:expanding", "linear:sliding"]
    days = {k: set(p.get_column("date").to_list()) for k, p in result.predictions.items()}
    assert days["linear:expanding"] == days["linear:sliding"] == set(result.sessions)
    assert result.scores[0].windows == result.scores[1].windows >= 1
    # Different training data: the two variants do not give the same scores.
    assert not result.predictions["linear:expanding"].equals(result.predictions["linear:sliding"])
    assert all(abs(s.ic) < 1 and s.rank_ic == s.rank_ic for s in result.scores)
    png = plot_comparison(result, home.root / "comparison.png")
    assert png.read_bytes()[:4] == b"\x89PNG"

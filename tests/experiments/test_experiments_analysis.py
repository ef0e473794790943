"""End to end: cookie_cats (real data), the JSON contract, SRM warnings, degenerate arms, the CLI and the demo step."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats import proportion as smp
from typer.testing import CliRunner

from cartlift.cli import app
from cartlift.cli._experiments import demo_step
from cartlift.errors import DataError, InvalidParameterError
from cartlift.experiments import (
    AnalysisConfig,
    SampleRatioMismatchWarning,
    SampleStats,
    analyze,
    analyze_file,
    verdicts,
)
from cartlift.store import EventStore

CONTRACT = [
    "name",
    "n",
    "mean",
    "lift",
    "ci_low",
    "ci_high",
    "p_value",
    "p_value_adjusted",
    "chance_to_beat_control",
]
runner = CliRunner()


@pytest.fixture(scope="module")
def cookie_cats(shared_data: Path) -> Path:
    return shared_data / "cookie_cats_ab" / "cookie_cats.csv"


@pytest.mark.parametrize("metric", ["retention_1", "retention_7"])
def test_cookie_cats_against_references(cookie_cats: Path, metric: str) -> None:
    raw = pd.read_csv(cookie_cats)
    result = analyze_file(cookie_cats, variant="version", metric=metric, control="gate_30")
    counts = raw["version"].value_counts()
    assert result.srm_p_value == pytest.approx(stats.chisquare(counts.to_numpy()).pvalue, rel=1e-10)
    assert not result.srm.mismatch  # p = 0.0086: the split 44,700 / 45,489 is within the 0.001 threshold
    a = raw.loc[raw["version"] == "gate_30", metric].astype(float).to_numpy()
    b = raw.loc[raw["version"] == "gate_40", metric].astype(float).to_numpy()
    v = result.variant("gate_40")
    assert (v.n, v.mean) == (b.size, pytest.approx(b.mean(), rel=1e-12))
    welch = stats.ttest_ind(b, a, equal_var=False)
    assert v.tests["welch"].p_value == pytest.approx(welch.pvalue, rel=1e-8)
    _, p = smp.proportions_ztest([b.sum(), a.sum()], [b.size, a.size])
    assert v.tests["z_test"].p_value == pytest.approx(p, rel=1e-8)
    chi = stats.chi2_contingency([[a.sum(), a.size - a.sum()], [b.sum(), b.size - b.sum()]], correction=False)
    assert v.tests["chi_square"].p_value == pytest.approx(chi.pvalue, rel=1e-8)
    assert v.tests["fisher_exact"].p_value == pytest.approx(
        stats.fisher_exact([[a.sum(), a.size - a.sum()], [b.sum(), b.size - b.sum()]]).pvalue, rel=1e-8
    )
    low, high = smp.proportion_confint(b.sum(), b.size, method="wilson")
    assert (v.mean_ci_low, v.mean_ci_high) == (pytest.approx(low, rel=1e-8), pytest.approx(high, rel=1e-8))
    # the published reading of this test: 7-day retention drops significantly with the gate at 40, 1-day does not
    assert (v.p_value < 0.05) == (metric == "retention_7")
    assert v.lift is not None and v.lift < 0


def test_cli_json_has_the_contract_shape(cookie_cats: Path) -> None:
    out = runner.invoke(
        app,
        [
            "experiment",
            "analyze",
            str(cookie_cats),
            "--variant",
            "version",
            "--metric",
            "retention_1",
            "--control",
            "gate_30",
            "--json",
        ],
    )
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert "srm_p_value" in doc
    for row in doc["variants"]:
        assert all(k in row for k in CONTRACT)
    assert doc["variants"][0]["name"] == "gate_30" and doc["variants"][1]["chance_to_beat_control"] < 0.5


def test_cli_human_table_and_other_methods(cookie_cats: Path) -> None:
    for method in ("frequentist", "bayesian", "sequential"):
        out = runner.invoke(
            app,
            [
                "experiment",
                "analyze",
                str(cookie_cats),
                "--variant",
                "version",
                "--metric",
                "retention_7",
                "--control",
                "gate_30",
                "--method",
                method,
            ],
        )
        assert out.exit_code == 0, out.output
        assert "gate_40" in out.stdout and "sample ratio check" in out.stdout
    bad = runner.invoke(
        app, ["experiment", "analyze", str(cookie_cats), "--variant", "nope", "--metric", "retention_7"]
    )
    assert bad.exit_code == 2 and "not in the data" in bad.output


def test_srm_mismatch_warns_and_is_reported() -> None:
    data = {"control": SampleStats.from_counts(500, 10_000), "b": SampleStats.from_counts(480, 9_000)}
    with pytest.warns(SampleRatioMismatchWarning, match="Sample ratio mismatch"):
        result = analyze(data)
    assert result.srm.mismatch and result.srm_p_value < 0.001
    assert verdicts(result)[0].startswith("Sample ratio mismatch")
    assert not analyze(data, expected_shares={"control": 10, "b": 9}).srm.mismatch


def test_empty_arm_and_constant_metric_give_messages_not_nan() -> None:
    empty = analyze(
        {"control": SampleStats.from_counts(50, 1000), "b": SampleStats.from_counts(0, 1)},
        expected_shares={"control": 0.999, "b": 0.001},
    )
    flat = analyze({"control": SampleStats(100, 0.0, 0.0), "b": SampleStats(100, 0.0, 0.0)})
    for result in (empty, flat):
        row = result.variants[1]
        assert row.error_code is not None and row.error_message
        values = [row.lift, row.ci_low, row.ci_high, row.p_value, row.chance_to_beat_control]
        assert all(x is not None and np.isfinite(x) for x in values)
        json.dumps(result.to_dict())


def test_abn_bayesian_and_absolute_options() -> None:
    data = {
        "control": SampleStats.from_counts(1000, 10_000),
        "b": SampleStats.from_counts(1100, 10_000),
        "c": SampleStats.from_counts(990, 10_000),
    }
    bayes = analyze(data, config=AnalysisConfig(method="bayesian"))
    assert bayes.variant("b").p_value is None and bayes.variant("b").chance_to_beat_control > 0.98  # type: ignore[operator]
    absolute = analyze(data, config=AnalysisConfig(relative=False, correction="bh"))
    assert absolute.variant("b").lift == pytest.approx(0.01)
    assert "beats control" in " ".join(verdicts(absolute))


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: analyze({"control": SampleStats(5, 1.0, 1.0)}),
            InvalidParameterError,
            "at least 2 variants",
        ),
        (
            lambda: analyze({"a": SampleStats(5, 1.0, 1.0), "b": SampleStats(5, 1.0, 1.0)}, control="x"),
            InvalidParameterError,
            "not among the variants",
        ),
        (
            lambda: AnalysisConfig(method="magic"),
            InvalidParameterError,
            "'method' parameter of AnalysisConfig",
        ),
        (lambda: AnalysisConfig(alpha=0.0), InvalidParameterError, "'alpha' parameter"),
        (
            lambda: analyze(
                {"a": SampleStats(5, 1.0, 1.0), "b": SampleStats(5, 1.0, 1.0)},
                config=AnalysisConfig(method="bootstrap"),
            ),
            InvalidParameterError,
            "unit-level values",
        ),
    ],
)
def test_analysis_misuse_raises(call: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()  # type: ignore[operator]


def test_file_with_missing_metric_values_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "units.csv"
    path.write_text("v,y\na,1\nb,\na,0\nb,1\n")
    with pytest.raises(DataError, match="1 unit\\(s\\) have no value in y"):
        analyze_file(path, variant="v", metric="y")


def test_parquet_ratio_and_bootstrap(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "arm": np.repeat(["control", "new"], 400),
            "revenue": rng.gamma(2, 10, 800),
            "sessions": rng.integers(1, 5, 800),
        }
    )
    path = tmp_path / "units.parquet"
    frame.to_parquet(path)
    ratio = analyze_file(path, variant="arm", metric="revenue", denominator="sessions")
    assert ratio.kind == "ratio"
    boot = analyze_file(
        path, variant="arm", metric="revenue", config=AnalysisConfig(method="bootstrap", n_resamples=500)
    )
    welch = analyze_file(path, variant="arm", metric="revenue")
    assert boot.variant("new").lift == pytest.approx(welch.variant("new").lift, rel=1e-12)
    assert boot.variant("new").p_value == pytest.approx(welch.variant("new").p_value, abs=0.1)


def _store_with_events(path: Path) -> EventStore:
    store = EventStore(path)
    rows = []
    rng = np.random.default_rng(3)
    for u in range(400):
        n = 2 + int(rng.random() < 0.3) * 2
        kinds = ["view", "cart_add", "checkout", "purchase"][:n]
        for k, kind in enumerate(kinds):
            rows.append(
                {
                    "event_id": f"e{u}-{k}",
                    "ts": f"2026-01-0{1 + u % 5}T10:00:0{k}Z",
                    "user_id": f"u{u}",
                    "session_id": f"s{u}",
                    "event_type": kind,
                    "product_id": "p",
                    "quantity": "1",
                    "price": "9.5",
                }
            )
    store.ingest_records(rows)
    return store


def test_cli_store_workflow_and_power(tmp_path: Path) -> None:
    db = tmp_path / "shop.duckdb"
    _store_with_events(db).close()
    create = runner.invoke(
        app,
        [
            "experiment",
            "create",
            "cta",
            "--variants",
            "control,green",
            "--salt",
            "c1",
            "--db",
            str(db),
            "--json",
        ],
    )
    assert create.exit_code == 0, create.output
    assert json.loads(create.stdout)["phase"] == 1
    reweigh = runner.invoke(
        app,
        [
            "experiment",
            "create",
            "cta",
            "--variants",
            "control,green",
            "--weights",
            "0.1,0.9",
            "--salt",
            "c1",
            "--db",
            str(db),
        ],
    )
    assert reweigh.exit_code == 2 and "new salt" in reweigh.output
    expose = runner.invoke(app, ["experiment", "expose", "cta", "--db", str(db), "--json"])
    assert json.loads(expose.stdout)["assigned"] == 400
    analysed = runner.invoke(
        app,
        ["experiment", "analyze", "--experiment", "cta", "--metric", "purchased", "--db", str(db), "--json"],
    )
    doc = json.loads(analysed.stdout)
    assert sum(v["n"] for v in doc["variants"]) == 400 and all(k in doc["variants"][1] for k in CONTRACT)
    funnel = runner.invoke(app, ["experiment", "funnel", "cta", "--db", str(db), "--json"])
    assert list(json.loads(funnel.stdout)["steps"]) == ["view", "cart_add", "checkout", "purchase"]
    listed = runner.invoke(app, ["experiment", "list", "--db", str(db), "--json"])
    assert json.loads(listed.stdout)["experiments"][0]["exposed"] == 400
    for args in (
        ["--baseline", "0.05", "--effect", "0.1", "--daily-units", "1000"],
        ["--baseline", "0.05", "--units", "5000"],
    ):
        plan = runner.invoke(app, ["experiment", "power", *args, "--json"])
        assert plan.exit_code == 0, plan.output
    bounds = runner.invoke(app, ["experiment", "boundaries", "--looks", "3", "--json"])
    assert len(json.loads(bounds.stdout)["z"]) == 3
    human = runner.invoke(app, ["experiment", "analyze", "--experiment", "cta", "--db", str(db)])
    assert human.exit_code == 0 and "green" in human.stdout
    units = tmp_path / "units.csv"
    units.write_text("user_id,country\n" + "".join(f"u{i},{'FR' if i % 2 else 'DE'}\n" for i in range(100)))
    runner.invoke(app, ["experiment", "create", "geo", "--target", "country=FR", "--db", str(db)])
    exposed = runner.invoke(
        app, ["experiment", "expose", "geo", "--units", str(units), "--db", str(db), "--json"]
    )
    assert exposed.exit_code == 0, exposed.output
    assert json.loads(exposed.stdout)["not_targeted"] == 50


def test_demo_step_on_any_events_table(tmp_path: Path) -> None:
    store = _store_with_events(tmp_path / "demo.duckdb")
    with store:
        summary = demo_step(store, tmp_path / "out")
        again = demo_step(store, tmp_path / "out")  # re-running the demo is harmless
    assert summary["units"] == again["units"] == 400
    assert 0 <= summary["srm_p_value"] <= 1 and Path(summary["file"]).is_file()
    assert set(json.loads(Path(summary["file"]).read_text())) >= {"purchased", "funnel"}
    with EventStore(tmp_path / "empty.duckdb") as empty:
        assert demo_step(empty, tmp_path / "out") == {"skipped": "the store has no events"}


def test_report_sections_render(tmp_path: Path) -> None:
    report = pytest.importorskip("cartlift.report")
    from cartlift.report import experiments_sections as report_sections

    with _store_with_events(tmp_path / "r.duckdb") as store:
        assert report_sections(store) == []  # no experiment yet: no section
        demo_step(store, tmp_path / "out")
        sections = report_sections(store)
    assert [s.title for s in sections] == ["Experiment: demo_aa_checkout"]
    assert len(sections[0].figures) == 1 and len(sections[0].tables) >= 2
    assert any("sample ratio check" in note for note in sections[0].notes)
    html = report.render_report(sections)
    assert "demo_aa_checkout" in html

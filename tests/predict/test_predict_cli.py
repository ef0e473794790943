"""`cartlift abandonment train / evaluate / score` as a user runs them, on a table and on a store."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cartlift.cli import app
from cartlift.cli._predict import demo_step
from cartlift.store import EventStore

runner = CliRunner()
METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece")


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    # Rich wraps long messages to the terminal width: compare words, not line breaks
    return result.exit_code, result.stdout, " ".join(result.stderr.split())


def write_table(path: Path, n: int = 2000, *, with_time: bool = False) -> Path:
    """The table of the contract check: x1, x2 (a/b), segment (control/mail), y."""
    rnd = random.Random(0)
    lines = ["x1,x2,segment,y" + (",ts" if with_time else "")]
    for i in range(n):
        x1, x2 = rnd.random(), rnd.choice(["a", "b"])
        seg = rnd.choice(["control", "mail"])
        p = 0.1 + 0.3 * x1 + (0.2 * x1 if seg == "mail" else 0)
        row = f"{x1:.4f},{x2},{seg},{int(rnd.random() < p)}"
        lines.append(row + (f",2026-01-{1 + i * 28 // n:02d} 10:00:00" if with_time else ""))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_table(tmp_path_factory.mktemp("table") / "table.csv")


@pytest.fixture(scope="module")
def small_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated store on a file the CLI opens itself (closed after writing)."""
    from cartlift.simulate import simulate

    path = tmp_path_factory.mktemp("cli-sim") / "store.duckdb"
    with EventStore(path) as store:
        simulate(n_users=500, n_days=10, random_state=3).write_to(store)
    return path


def test_evaluate_table_prints_the_documented_json(table: Path) -> None:
    args = ("abandonment", "evaluate", "--table", str(table), "--label", "y", "--split", "random")
    code, out, _ = run(*args, "--test-size", "0.2", "--seed", "0", "--json")
    assert code == 0
    doc = json.loads(out)
    assert all(doc[k] >= 0 for k in METRICS) and 0.55 < doc["roc_auc"] < 0.9
    assert (doc["n_train"], doc["n_test"], doc["positive_class"]) == (1600, 400, 1)
    assert len(doc["lift"]) == 10 and doc["lift"][-1]["cumulative_gain"] == pytest.approx(1.0)
    assert {r["feature"] for r in doc["feature_importance"]} == {"x1", "x2", "segment"}
    assert doc["feature_importance"][0]["feature"] == "x1"  # the one that drives y
    assert set(METRICS) <= doc["baseline"].keys()
    assert sum(r["n"] for r in doc["calibration"]) == 400
    # the same seed gives the same numbers
    assert json.loads(run(*args, "--test-size", "0.2", "--seed", "0", "--json")[1]) == doc


def test_evaluate_table_by_time_with_text_labels(tmp_path: Path) -> None:
    path = write_table(tmp_path / "t.csv", with_time=True)
    text = path.read_text().replace(",1,2026", ",bought,2026").replace(",0,2026", ",left,2026")
    path.write_text(text)
    code, out, _ = run(
        "abandonment", "evaluate", "--table", str(path), "--label", "y", "--split", "time",
        "--time-column", "ts", "--positive", "left", "--drop", "x2", "--model", "logistic", "--json",
    )  # fmt: skip
    assert code == 0
    doc = json.loads(out)
    assert doc["positive_class"] == "left" and doc["model"] == "logistic"
    assert 0.65 < doc["positive_rate"] < 0.8  # "left" is the common outcome here (about 72 %)
    assert {r["feature"] for r in doc["feature_importance"]} == {"x1", "segment"}
    assert 300 <= doc["n_test"] <= 500  # the last days, whole days at the cut


def test_train_a_table_model_then_refuse_to_score_sessions_with_it(
    table: Path, small_store: Path, tmp_path: Path
) -> None:
    model = str(tmp_path / "m")
    code, out, _ = run(
        "abandonment", "train", "--table", str(table), "--label", "y", "--model-dir", model, "--json"
    )
    assert code == 0 and json.loads(out)["features"] == ["x1", "x2", "segment"]
    code, _, err = run(
        "abandonment", "score", "--session", "s1", "--model-dir", model, "--db", str(small_store)
    )
    assert code == 2 and "trained on a table" in err


def test_train_evaluate_and_score_on_a_store(small_store: Path, tmp_path: Path) -> None:
    db, model = str(small_store), str(tmp_path / "m")
    code, out, _ = run("abandonment", "evaluate", "--db", db, "--json")
    doc = json.loads(out)
    assert code == 0 and doc["split"] == "time" and doc["moments"] == "last_cart_event"
    assert {"roc_auc_true", "roc_auc_model", "auc_ratio"} <= doc["truth"].keys()
    code, out, _ = run("abandonment", "train", "--db", db, "--model-dir", model, "--json")
    assert code == 0 and json.loads(out)["rows"] > 50
    with EventStore(small_store, read_only=True) as store:
        session = store.query("SELECT session_id FROM events WHERE event_type = 'cart_add' LIMIT 1").iloc[
            0, 0
        ]
    code, out, _ = run(
        "abandonment", "score", "--session", session, "--model-dir", model, "--db", db, "--json"
    )
    doc = json.loads(out)
    assert code == 0 and doc["session_id"] == session and 0 < doc["p_abandon"] < 1
    code, out, _ = run("abandonment", "score", "--session", session, "--model-dir", model, "--db", db)
    assert code == 0 and "P(abandon)" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("evaluate", "--table", "t.csv"), "--table needs --label"),
        (("evaluate", "--table", "missing.csv", "--label", "y"), "No such file"),
        (("evaluate", "--table", "{table}", "--label", "nope"), "no column 'nope'"),
        (("evaluate", "--table", "{table}", "--label", "y", "--split", "time"), "needs the time of each row"),
        (("evaluate", "--table", "{table}", "--label", "y", "--test-size", "1.5"), "'test_size' parameter"),
        (("evaluate", "--table", "{table}", "--label", "y", "--model", "xgboost"), "Unknown model 'xgboost'"),
    ],
)
def test_mistakes_get_one_clear_line(table: Path, args: tuple[str, ...], message: str) -> None:
    code, out, err = run("abandonment", *[a.replace("{table}", str(table)) for a in args])
    assert code == 2 and message in err + out


def test_demo_step(small_store: Path, tmp_path: Path) -> None:
    with EventStore(small_store, read_only=True) as store:
        result: dict[str, Any] = demo_step(store, tmp_path)
    assert set(METRICS) <= result.keys() and "auc_ratio" in result
    assert Path(result["evaluation"]).is_file() and (Path(result["model"]) / "model.json").is_file()
    assert "lift" in json.loads(Path(result["evaluation"]).read_text())

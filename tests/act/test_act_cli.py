"""`cartlift act ...` on a local Typer app: the JSON shapes scripts rely on, errors, and the demo step."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from cartlift.act import decision_outcomes, run_demo, run_simulation
from cartlift.cli._act import register
from cartlift.simulate import simulate_to
from cartlift.store import EventStore


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def root() -> None:
        """cartlift (test app)."""

    return app


def _run(app: typer.Typer, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["act", *args])
    return result.exit_code, result.stdout


def _doc(text: str) -> dict:
    return json.loads(text[text.find("{") :])


def _contract_table(path: Path) -> Path:
    """The contract check's table: x1, x2 (a/b), segment (control/mail), y."""
    rnd = random.Random(0)
    lines = ["x1,x2,segment,y"]
    for _ in range(2000):
        x1, x2 = rnd.random(), rnd.choice(["a", "b"])
        seg = rnd.choice(["control", "mail"])
        p = 0.1 + 0.3 * x1 + (0.2 * x1 if seg == "mail" else 0)
        lines.append(f"{x1:.4f},{x2},{seg},{int(rnd.random() < p)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_uplift_json_has_the_contract_shape(app: typer.Typer, tmp_path: Path) -> None:
    table = _contract_table(tmp_path / "table.csv")
    code, out = _run(app, "uplift", "--table", str(table), "--treatment", "segment", "--control", "control",
                     "--outcome", "y", "--test-size", "0.3", "--seed", "0", "--json")  # fmt: skip
    assert code == 0
    doc = _doc(out)
    mail = doc["treatments"]["mail"]
    assert {"qini", "auuc", "uplift_at_30"} <= set(mail)
    assert doc["test_rows"] == 600 and set(doc["learners"]) == {"s_learner", "t_learner", "x_learner"}
    # the table's uplift is positive (0.2 x1): the held-out effect estimate agrees
    assert 0.0 < mail["ate"] < 0.25


def test_simulate_json_has_the_contract_shape(app: typer.Typer) -> None:
    code, out = _run(
        app, "simulate", "--users", "2000", "--train-days", "4", "--days", "2", "--seed", "0", "--json"
    )
    assert code == 0
    pols = _doc(out)["policies"]
    assert {"oracle", "nothing", "coupon_all", "reminder_all", "profit", "thompson"} == set(pols)
    for p in pols.values():
        assert {"profit_per_cart", "conversion", "discount_spent"} <= set(p)
    code, out = _run(
        app, "simulate", "--users", "1500", "--train-days", "3", "--days", "1", "--policy", "profit"
    )
    assert code == 0 and "│ profit" in out and "│ thompson" not in out


def test_train_decide_and_ope_commands(app: typer.Typer, tmp_path: Path) -> None:
    db = tmp_path / "store.duckdb"
    with EventStore(db) as store:
        run_simulation(n_users=2000, train_days=5, days=1, policies=["oracle"], random_state=4, store=store)
        decision_outcomes(store, matured_only=False).to_parquet(tmp_path / "log.parquet")
        cart = str(store.query("SELECT cart_id FROM decisions ORDER BY ts DESC LIMIT 1")["cart_id"][0])
        last = store.query("SELECT max(ts) AS t FROM events")["t"][0]
    code, out = _run(app, "train", "--db", str(db))
    assert code == 2  # every outcome window is still open: nothing to learn from yet
    with EventStore(db) as store:
        # eight days later every outcome window has closed
        store.ingest_records([{"event_id": "later", "ts": (last + pd.Timedelta(days=8)).isoformat() + "Z",
                               "user_id": "u0", "session_id": "later", "event_type": "view", "product_id": "p0001",
                               "price": 1.0, "quantity": 1}])  # fmt: skip
    code, out = _run(app, "decide", "--cart", cart, "--db", str(db), "--json")
    assert (
        code == 0 and _doc(out)["already_decided"]
    )  # no dead end before training; a decided cart keeps its decision
    code, out = _run(app, "train", "--db", str(db), "--json")
    assert code == 0 and _doc(out)["decisions"] > 50
    code, out = _run(app, "decide", "--cart", cart, "--db", str(db), "--json")
    doc = _doc(out)
    assert code == 0 and doc["already_decided"]  # the explored cart keeps its logged decision
    code, out = _run(app, "ope", "--log", str(tmp_path / "log.parquet"), "--policy", "uniform",
                     "--reward", "purchased", "--bootstrap", "20", "--json")  # fmt: skip
    est = _doc(out)["estimates"]
    assert code == 0 and set(est) == {"replay", "dm", "ips", "snips", "dr", "sndr"}
    code, out = _run(app, "ope", "--log", str(tmp_path / "log.parquet"), "--policy", "profit", "--db", str(db),
                     "--bootstrap", "20")  # fmt: skip
    assert code == 0 and "sndr" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["uplift", "--table", "missing.csv", "--treatment", "t", "--control", "c", "--outcome", "y"],
            "No file",
        ),
        (["simulate", "--users", "200", "--policy", "greedy", "--json"], "Unknown policy"),
        (["ope", "--log", "missing.csv", "--policy", "uniform"], "No file"),
    ],
)
def test_expected_errors_exit_2_with_a_message(app: typer.Typer, args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["act", *args])
    assert result.exit_code == 2
    assert message in result.output or message in (result.stderr or "")


def test_run_demo_saves_a_policy_the_store_can_decide_with(tmp_path: Path) -> None:
    with EventStore(tmp_path / "demo.duckdb") as store:
        simulate_to(store, random_state=0, n_users=400, n_days=4)
        result = run_demo(store, tmp_path, n_users=2000, examples=2)
        assert {"oracle", "nothing", "coupon_all", "reminder_all", "profit"} <= set(result["profit_per_cart"])
        assert Path(result["file"]).is_file() and len(result["examples"]) == 2
        assert "consents" in store.tables() and "act_models" in store.tables()
        assert "decisions" not in store.tables() or store.count("decisions") == 0  # examples are not logged
    assert "policies" in json.loads(Path(result["file"]).read_text())


def test_uplift_reads_parquet_and_text_controls(app: typer.Typer, tmp_path: Path) -> None:
    table = pd.read_csv(_contract_table(tmp_path / "t.csv"))
    table["segment"] = (table["segment"] == "mail").astype(int)  # numeric arms, control given as text
    table.to_parquet(tmp_path / "t.parquet")
    code, out = _run(app, "uplift", "--table", str(tmp_path / "t.parquet"), "--treatment", "segment",
                     "--control", "0", "--outcome", "y", "--json")  # fmt: skip
    assert code == 0 and "1" in _doc(out)["treatments"]

"""`cartlift act ...`: next best action for profit (train, decide, simulate, ope, uplift)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from cartlift.cli._common import (
    DbOption,
    JsonOption,
    console,
    emit_json,
    guarded,
    open_store,
    out,
    print_warnings,
    progress_bar,
)

if TYPE_CHECKING:
    from cartlift.store import EventStore

LEARNERS = ("s_learner", "t_learner", "x_learner")


def demo_step(store: EventStore, out_dir: Path) -> dict[str, Any]:
    """The demo's act step: policies against the simulated truth, profit per cart, a saved policy.

    See `cartlift.act.run_demo`; writes ``out_dir/act_simulation.json``.
    """
    from cartlift.act import run_demo

    return run_demo(store, out_dir)


def _rules(coupon_budget: float | None, max_messages: int | None, quiet: bool) -> Any:
    from cartlift.act import Rules

    return Rules(
        coupon_budget_per_day=coupon_budget,
        max_messages_per_week=max_messages,
        quiet_hours=(21, 8) if quiet else None,
    )


def _print_simulation(result: dict[str, Any]) -> None:
    table = Table(
        "policy", "profit / cart", "of oracle", "conversion", "discount spent", "messages", "coupons",
        title=f"{result['setup']['test_carts']:,} abandoned carts over {result['setup']['days']} day(s), true reactions",
    )  # fmt: skip
    for name, r in result["policies"].items():
        table.add_row(
            name,
            f"{r['profit_per_cart']:.3f}",
            f"{r['share_of_oracle']:.1%}",
            f"{r['conversion']:.3f}",
            f"{r['discount_spent']:,.0f}",
            f"{r['messages']:,}",
            f"{r['coupons']:,}",
        )
    out.print(table)
    bandit = result.get("bandit") or {}
    if bandit:
        days = bandit["per_day"]
        cum = ", ".join(f"{d['cumulative_regret']:.0f}" for d in days)
        out.print(f"Thompson sampling, cumulative regret by day (vs best policy of its class): {cum}")
        out.print(
            f"  regret per cart: first half {bandit['regret_per_cart_first_half']:.3f}, "
            f"second half {bandit['regret_per_cart_second_half']:.3f}; cumulative regret grows like "
            f"decisions^{bandit['growth_exponent']:.2f}"
        )
    up = result["uplift"]
    out.print(
        f"uplift ranking: mean Qini against the true uplift {up['mean_true_qini']:.3f}; persuadables are "
        f"{up['persuadable_share_top30']:.0%} of the top 30 % vs {up['persuadable_share_all']:.0%} of all carts"
    )


def register(app: typer.Typer) -> None:
    """Add `cartlift act ...` to ``app``."""
    act = typer.Typer(
        help="Next best action for profit: uplift models, the profit policy, bandits, off-policy evaluation.",
        no_args_is_help=True,
    )
    app.add_typer(act, name="act")

    @act.command("train")
    @guarded
    def train(
        learner: Annotated[str, typer.Option(help=f"Uplift model: {', '.join(LEARNERS)}.")] = "s_learner",
        policy: Annotated[
            list[str] | None,
            typer.Option(
                "--from-policy", help="Learn only from decisions of this logged policy (repeatable)."
            ),
        ] = None,
        coupon_budget: Annotated[
            float | None, typer.Option(help="Coupon face value allowed per day (default: no budget).")
        ] = None,
        max_messages: Annotated[int | None, typer.Option(help="Messages per customer per 7 days.")] = 3,
        seed: Annotated[int, typer.Option(help="Seed of the model.")] = 0,
        db: DbOption = None,
        json: JsonOption = False,
    ) -> None:
        """Fit the profit policy on the store's decision log and outcomes; save it in the store."""
        from cartlift.act import train_from_log

        with open_store(db) as store:
            result = train_from_log(
                store,
                learner=learner,
                policies=policy or None,
                rules=_rules(coupon_budget, max_messages, True),
                random_state=seed,
            )
        if json:
            emit_json(result)
            return
        out.print(
            f"trained {result['learner']} profit policy on {result['decisions']:,} decisions "
            f"(purchase rate {result['purchase_rate']:.3f}); saved as {result['name']!r}"
        )

    @act.command("decide")
    @guarded
    def decide(
        cart: Annotated[str, typer.Option("--cart", help="The abandoned cart's id (its session id).")],
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Decide but do not log the decision.")
        ] = False,
        recommender: Annotated[
            Path | None,
            typer.Option(
                help="Saved recommender (cartlift recommend train): items for a recommendation block."
            ),
        ] = None,
        db: DbOption = None,
        json: JsonOption = False,
    ) -> None:
        """Choose the next best action for one abandoned cart, log it, and say why.

        Without a trained policy the randomised default policy decides (logged with its exact
        propensity); once the log holds enough matured outcomes the profit policy is trained and
        takes over (see `cartlift act status`).
        """
        from cartlift.act import decide_cart

        with open_store(db) as store:
            result = decide_cart(store, cart, log=not dry_run, recommender=recommender)
        if json:
            emit_json(result)
            return
        code = f", coupon {result['coupon_code']}" if result.get("coupon_code") else ""
        out.print(f"[bold]{result['action']}[/] for cart {result['cart_id']} ({result['channel']}{code})")
        out.print(f"  {result['reason']}")
        if result.get("items"):
            out.print(f"  recommended items: {', '.join(result['items'])}")
        if result["policy"] == "default":
            table = Table("action", "default weight", "not allowed because")
            for name, o in result["options"].items():
                table.add_row(name, f"{o['weight']:.2f}", o["not_allowed"])
        else:
            table = Table("action", "P(buy)", "expected profit", "not allowed because")
            for name, o in result["options"].items():
                table.add_row(name, f"{o['p_buy']:.3f}", f"{o['expected_profit']:.2f}", o["not_allowed"])
        out.print(table)
        if result["already_decided"]:
            console.print("This cart was already decided; the logged decision is shown.")

    @act.command("status")
    @guarded
    def status(db: DbOption = None, json: JsonOption = False) -> None:
        """Which policy decides now: the saved profit policy, or the default until enough outcomes matured."""
        from cartlift.act import handover_status

        with open_store(db) as store:
            result = handover_status(store)
        if json:
            emit_json(result)
            return
        out.print(
            f"deciding policy: [bold]{result['policy']}[/]; matured decisions {result['matured_decisions']:,} "
            f"of {result['min_decisions']:,} needed, purchases {result['purchases']:,} of {result['min_purchases']:,}"
        )

    @act.command("simulate")
    @guarded
    def simulate(
        policy: Annotated[
            list[str] | None,
            typer.Option(
                "--policy", help="Policy to run besides the yardsticks: profit, thompson (repeatable)."
            ),
        ] = None,
        days: Annotated[int, typer.Option(help="Days the policies are compared on.", min=1)] = 7,
        train_days: Annotated[
            int, typer.Option(help="Days of randomised exploration to learn from.", min=1)
        ] = 28,
        users: Annotated[int, typer.Option(help="Simulated customers.", min=100)] = 40_000,
        learner: Annotated[
            str, typer.Option(help=f"Profit policy's uplift model: {', '.join(LEARNERS)}.")
        ] = "s_learner",
        coupon_budget: Annotated[
            float | None, typer.Option(help="Coupon face value allowed per day.")
        ] = None,
        max_messages: Annotated[int | None, typer.Option(help="Messages per customer per 7 days.")] = 3,
        seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same run.")] = 0,
        json: JsonOption = False,
    ) -> None:
        """Run policies against a simulated store's true reactions, with the oracle as the ceiling.

        Always runs the oracle (knows every customer's true reaction), nothing, coupon_all (10 %
        coupon to everyone reachable) and reminder_all; by default also the profit policy and the
        Thompson-sampling bandit. --json prints {"policies": {name: {"profit_per_cart", "conversion",
        "discount_spent", ...}}, "bandit": {...}, "uplift": {...}}.
        """
        from cartlift.act import public_result, run_simulation

        chosen = ["oracle", "nothing", "coupon_all", "reminder_all", *(policy or ["profit", "thompson"])]
        kwargs: dict[str, Any] = {
            "n_users": users,
            "train_days": train_days,
            "days": days,
            "policies": list(dict.fromkeys(chosen)),
            "learner": learner,
            "rules": _rules(coupon_budget, max_messages, True),
            "random_state": seed,
        }
        if json:
            result = run_simulation(**kwargs)
        else:
            with progress_bar() as bar:
                result = run_simulation(**kwargs, progress=bar)
        doc = public_result(result)
        if json:
            emit_json(doc)
        else:
            _print_simulation(doc)

    @act.command("ope")
    @guarded
    def ope(
        log: Annotated[
            Path, typer.Option("--log", help="Decision log: CSV/Parquet with action, propensity, reward.")
        ],
        policy: Annotated[
            str,
            typer.Option("--policy", help="uniform, coupon_all, reminder_all, profit, or an action name."),
        ],
        reward: Annotated[
            str | None, typer.Option(help="Reward column (default: reward, profit or purchased).")
        ] = None,
        bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for the intervals.", min=1)] = 200,
        seed: Annotated[int, typer.Option(help="Seed of the bootstrap and the folds.")] = 0,
        db: DbOption = None,
        json: JsonOption = False,
    ) -> None:
        """Estimate a policy's value from another policy's log: replay, DM, IPS, SNIPS, DR, SNDR."""
        from cartlift.act import ope_from_log

        if policy == "profit":
            with open_store(db, read_only=True) as store:
                result = ope_from_log(
                    log, policy=policy, store=store, reward=reward, n_bootstrap=bootstrap, seed=seed
                )
        else:
            result = ope_from_log(log, policy=policy, reward=reward, n_bootstrap=bootstrap, seed=seed)
        if json:
            emit_json(result)
            return
        table = Table(
            "estimator",
            "value",
            "95% CI",
            title=f"{policy} on {result['rows']:,} logged rounds ({result['reward']})",
        )
        for name, est in result["estimates"].items():
            table.add_row(name, f"{est['value']:.4f}", f"{est['ci_low']:.4f} .. {est['ci_high']:.4f}")
        out.print(table)
        out.print(f"the logging policy's own mean reward: {result['logged_value']:.4f}")

    @act.command("uplift")
    @guarded
    def uplift(
        table_path: Annotated[
            Path, typer.Option("--table", help="Randomised table: CSV/TSV/Parquet/JSON lines.")
        ],
        treatment: Annotated[str, typer.Option("--treatment", help="Column with each row's arm.")],
        control: Annotated[str, typer.Option("--control", help="The control arm's value.")],
        outcome: Annotated[str, typer.Option("--outcome", help="Binary outcome column.")],
        test_size: Annotated[float, typer.Option(help="Share of rows held out for scoring.")] = 0.3,
        seed: Annotated[int, typer.Option(help="Seed of the split and the models.")] = 0,
        learner: Annotated[
            str, typer.Option(help=f"Whose scores to report: {', '.join(LEARNERS)}.")
        ] = "s_learner",
        drop: Annotated[
            list[str] | None,
            typer.Option("--drop", help="A column not to use as a feature (repeat for more)."),
        ] = None,
        json: JsonOption = False,
    ) -> None:
        """Held-out Qini, AUUC and uplift@30% of S-, T- and X-learners for every treatment vs the control.

        Qini is normalised so random targeting scores 0 and the perfect ranking 1; AUUC so random
        scores 0.5. Columns that differ between the arms (they followed the treatment) or decide
        the outcome on their own are named in a warning and dropped.
        """
        from cartlift.act import uplift_from_table

        result = uplift_from_table(
            table_path,
            treatment=treatment,
            control=control,
            outcome=outcome,
            test_size=test_size,
            seed=seed,
            learner=learner,
            drop=drop or (),
        )
        print_warnings(result["warnings"])
        if json:
            emit_json(result)
            return
        grid = Table(
            "learner", "treatment", "qini", "auuc", "uplift@30%", "ate", title="held-out uplift scores"
        )
        for name, treatments in result["learners"].items():
            for t, r in treatments.items():
                grid.add_row(
                    name,
                    t,
                    f"{r['qini']:.3f}",
                    f"{r['auuc']:.3f}",
                    f"{r['uplift_at_30']:.3f}",
                    f"{r['ate']:.3f}",
                )
        out.print(grid)

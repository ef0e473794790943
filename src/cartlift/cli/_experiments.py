"""`cartlift experiment ...`: define, expose, analyse and plan A/B tests (logic lives in cartlift.experiments)."""

from __future__ import annotations

import json as jsonlib
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from cartlift.cli._common import DbOption, JsonOption, console, emit_json, guarded, open_store, out
from cartlift.store import EventStore

METHOD_HELP = "frequentist (fixed horizon), bayesian, sequential (safe to peek) or bootstrap (files only)."


def register(app: typer.Typer) -> None:
    """Add the `experiment` command group to ``app``."""
    group = typer.Typer(
        help="A/B and multivariate tests: define, assign, analyse, plan.", no_args_is_help=True
    )
    app.add_typer(group, name="experiment")

    @group.command()
    @guarded
    def analyze(
        file: Annotated[
            Path | None, typer.Argument(help="CSV/Parquet/JSON-lines file, one row per unit.")
        ] = None,
        variant: Annotated[
            str | None, typer.Option(help="Column with the variant of each unit (files).")
        ] = None,
        metric: Annotated[
            str | None,
            typer.Option(help="Metric column (files) or store metric: purchased, revenue, orders, ..."),
        ] = None,
        control: Annotated[
            str | None, typer.Option(help="Control variant (default: 'control' or first).")
        ] = None,
        covariate: Annotated[
            str | None, typer.Option(help="Pre-period covariate column for CUPED ('pre' on the store).")
        ] = None,
        denominator: Annotated[
            str | None, typer.Option(help="Denominator column: analyse a ratio metric.")
        ] = None,
        method: Annotated[str, typer.Option(help=METHOD_HELP)] = "frequentist",
        correction: Annotated[str, typer.Option(help="A/B/n correction: holm, bh or none.")] = "holm",
        alpha: Annotated[float, typer.Option(help="Significance level (0.05 = 95% intervals).")] = 0.05,
        absolute: Annotated[
            bool, typer.Option("--absolute", help="Report absolute differences, not relative lift.")
        ] = False,
        experiment: Annotated[
            str | None, typer.Option(help="Analyse this experiment of the store instead of a file.")
        ] = None,
        window_days: Annotated[
            float | None, typer.Option(help="Store: count events up to N days after exposure.")
        ] = None,
        db: DbOption = None,
        json: JsonOption = False,
    ) -> None:
        """Analyse a test: SRM check, lift with intervals, p-values, chance to beat control."""
        from cartlift.experiments import AnalysisConfig, analyze_file, analyze_store

        config = AnalysisConfig(method=method, alpha=alpha, relative=not absolute, correction=correction)
        if experiment is not None:
            if file is not None or denominator is not None:
                raise typer.BadParameter("--experiment analyses the store: drop FILE and --denominator.")
            with open_store(db, read_only=True) as store:
                result = analyze_store(
                    store,
                    experiment,
                    metric or "purchased",
                    covariate=covariate,
                    config=config,
                    window_days=window_days,
                )
        else:
            if file is None or variant is None or metric is None:
                raise typer.BadParameter(
                    "give FILE with --variant and --metric, or --experiment NAME with --db."
                )
            result = analyze_file(
                file,
                variant=variant,
                metric=metric,
                control=control,
                covariate=covariate,
                denominator=denominator,
                config=config,
            )
        if json:
            emit_json(result.to_dict())
            return
        print_result(result)

    @group.command()
    @guarded
    def power(
        baseline: Annotated[
            float, typer.Option(help="Control mean: a conversion rate (0.05) or a mean with --sd.")
        ],
        effect: Annotated[
            float | None, typer.Option(help="Effect to detect, relative (0.1 = +10%) unless --absolute.")
        ] = None,
        units: Annotated[
            int | None, typer.Option(help="Units per variant you can get: report power and the MDE instead.")
        ] = None,
        sd: Annotated[
            float | None, typer.Option(help="Per-unit standard deviation of a continuous metric.")
        ] = None,
        absolute: Annotated[
            bool, typer.Option("--absolute", help="The effect is absolute, not relative.")
        ] = False,
        alpha: Annotated[float, typer.Option(help="Two-sided significance level.")] = 0.05,
        target_power: Annotated[float, typer.Option("--power", help="Wanted power.")] = 0.8,
        variants: Annotated[int, typer.Option(help="Arms including the control.")] = 2,
        daily_units: Annotated[
            float | None, typer.Option(help="Units entering per day: gives the duration.")
        ] = None,
        coverage: Annotated[float, typer.Option(help="Share of daily units in the test.")] = 1.0,
        json: JsonOption = False,
    ) -> None:
        """Sample size and duration for an effect, or power and MDE for a number of units."""
        from cartlift.experiments import detectable, plan

        data: dict[str, Any]
        if units is not None:
            data = detectable(
                baseline,
                units,
                effect=effect,
                sd=sd,
                relative=not absolute,
                alpha=alpha,
                power=target_power,
                variants=variants,
            )
        else:
            if effect is None:
                raise typer.BadParameter(
                    "give --effect (to size a test) or --units (to get its power and MDE)."
                )
            data = plan(
                baseline,
                effect,
                sd=sd,
                relative=not absolute,
                alpha=alpha,
                power=target_power,
                variants=variants,
                daily_units=daily_units,
                coverage=coverage,
            ).to_dict()
        if json:
            emit_json(data)
            return
        table = Table("measure", "value", title="test plan", show_header=False)
        for key, value in data.items():
            if value is not None:
                table.add_row(
                    key.replace("_", " "),
                    f"{value:,.6g}"
                    if isinstance(value, float)
                    else f"{value:,}"
                    if isinstance(value, int) and not isinstance(value, bool)
                    else str(value),
                )
        out.print(table)

    @group.command()
    @guarded
    def create(
        name: Annotated[str, typer.Argument(help="Experiment name.")],
        variants: Annotated[
            str, typer.Option(help="Comma-separated variants, control first.")
        ] = "control,treatment",
        weights: Annotated[str | None, typer.Option(help="Comma-separated weights (default: equal).")] = None,
        salt: Annotated[
            str | None, typer.Option(help="Hash salt (default: the name); a new salt = a new phase.")
        ] = None,
        coverage: Annotated[float, typer.Option(help="Share of eligible units in the test.")] = 1.0,
        holdout: Annotated[float, typer.Option(help="Share of units held out of all phases.")] = 0.0,
        target: Annotated[
            list[str] | None, typer.Option(help="Targeting condition attr=value or attr=JSON (repeatable).")
        ] = None,
        db: DbOption = None,
        json: JsonOption = False,
    ) -> None:
        """Define (or update) an experiment in the store; re-weighting needs a new --salt."""
        from cartlift.experiments import Experiment, save_experiment

        targeting: dict[str, Any] = {}
        for item in target or []:
            key, _, raw = item.partition("=")
            try:
                targeting[key.strip()] = jsonlib.loads(raw)
            except ValueError:
                targeting[key.strip()] = raw
        exp = Experiment(
            name=name,
            variants=tuple(v.strip() for v in variants.split(",")),
            weights=None if weights is None else tuple(float(w) for w in weights.split(",")),
            salt=salt,
            coverage=coverage,
            holdout=holdout,
            targeting=targeting,
        )
        with open_store(db) as store:
            phase = save_experiment(store, exp)
        data = {**exp.to_dict(), "phase": phase}
        if json:
            emit_json(data)
        else:
            out.print(
                f"experiment [bold]{name}[/] phase {phase}: {', '.join(exp.variants)} (salt {exp.salt!r})"
            )

    @group.command()
    @guarded
    def expose(
        name: Annotated[str, typer.Argument(help="Experiment name.")],
        units: Annotated[
            Path | None, typer.Option(help="CSV/Parquet of units to expose (else: every user of the events).")
        ] = None,
        unit_column: Annotated[str, typer.Option(help="Unit id column of --units.")] = "user_id",
        db: DbOption = None,
        json: JsonOption = False,
    ) -> None:
        """Assign units by hash and log their exposures (idempotent)."""
        from cartlift.experiments import expose_event_users, expose_file

        with open_store(db) as store:
            counts = (
                expose_event_users(store, name)
                if units is None
                else expose_file(store, name, units, unit_column=unit_column)
            )
        if json:
            emit_json(counts)
        else:
            out.print(", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in counts.items()))

    @group.command("list")
    @guarded
    def list_(db: DbOption = None, json: JsonOption = False) -> None:
        """Experiments in the store with their phase and exposed units."""
        from cartlift.experiments import list_experiments

        with open_store(db, read_only=True) as store:
            frame = list_experiments(store)
        if json:
            emit_json({"experiments": frame.astype(object).to_dict("records")})
            return
        table = Table(*frame.columns, title="experiments")
        for row in frame.itertuples(index=False):
            table.add_row(*(str(v) for v in row))
        out.print(table)

    @group.command()
    @guarded
    def funnel(
        name: Annotated[str, typer.Argument(help="Experiment name.")],
        method: Annotated[str, typer.Option(help=METHOD_HELP)] = "frequentist",
        window_days: Annotated[
            float | None, typer.Option(help="Count events up to N days after exposure.")
        ] = None,
        db: DbOption = None,
        json: JsonOption = False,
    ) -> None:
        """Each funnel step (view, cart, checkout, purchase) over all exposed units, by variant."""
        from cartlift.experiments import AnalysisConfig, analyze_funnel

        with open_store(db, read_only=True) as store:
            steps = analyze_funnel(store, name, config=AnalysisConfig(method=method), window_days=window_days)
        if json:
            emit_json({"steps": {k: v.to_dict() for k, v in steps.items()}})
            return
        for result in steps.values():
            print_result(result)

    @group.command()
    @guarded
    def boundaries(
        looks: Annotated[int, typer.Option(help="Number of equally spaced looks.")] = 5,
        spending: Annotated[str, typer.Option(help="obrien_fleming or pocock.")] = "obrien_fleming",
        alpha: Annotated[float, typer.Option(help="Overall two-sided level.")] = 0.05,
        json: JsonOption = False,
    ) -> None:
        """Group-sequential stopping boundaries (Lan-DeMets alpha spending)."""
        from cartlift.experiments import spending_boundaries

        design = spending_boundaries(looks, alpha=alpha, spending=spending)
        if json:
            emit_json(design.to_dict())
            return
        table = Table(
            "look",
            "information",
            "stop if |z| >=",
            "nominal p <",
            "alpha spent",
            title=f"{spending} boundaries",
        )
        for i, (t, z, p, a) in enumerate(
            zip(design.information_fractions, design.z, design.nominal_alpha, design.alpha_spent, strict=True)
        ):
            table.add_row(str(i + 1), f"{t:.0%}", f"{z:.3f}", f"{p:.2e}", f"{a:.2e}")
        out.print(table)


def print_result(result: Any) -> None:
    """The table a marketer reads, then one verdict line per variant."""
    from cartlift.experiments import format_value, verdicts

    pct_mean = result.binary
    pct_lift = result.relative or result.binary
    level = round((1 - result.alpha) * 100)
    title = f"{result.metric} ({result.method}{', CUPED' if result.kind == 'cuped' else ''}) vs control {result.control}"
    p_head = "p adj." if result.method != "bayesian" else "p"
    table = Table(title=escape(title), box=box.SIMPLE_HEAD, show_edge=False)
    heads = (
        "variant",
        "units",
        "conversion" if pct_mean else "mean",
        f"lift [{level}% CI]",
        p_head,
        "P(better)",
    )
    for head in heads:
        table.add_column(head, no_wrap=True, justify="left" if head == "variant" else "right")
    for v in result.variants:
        lift = (
            ""
            if v.is_control
            else f"{format_value(v.lift, percent=pct_lift, signed=True)} "
            f"[{format_value(v.ci_low, percent=pct_lift, signed=True)}, {format_value(v.ci_high, percent=pct_lift, signed=True)}]"
        )
        p = "" if v.p_value_adjusted is None else f"{v.p_value_adjusted:.4f}"
        chance = "" if v.chance_to_beat_control is None else f"{v.chance_to_beat_control * 100:.1f}%"
        style = "green" if v.significant and (v.lift or 0) > 0 else "red" if v.significant else None
        table.add_row(
            escape(v.name),
            f"{v.n:,}",
            format_value(v.mean, percent=pct_mean),
            escape(lift),
            p,
            chance,
            style=style,
        )
    out.print(table)
    srm = result.srm
    colour = "red" if srm.mismatch else "green"
    out.print(
        f"[{colour}]sample ratio check: p = {srm.p_value:.4f}{' MISMATCH' if srm.mismatch else ' ok'}[/]"
    )
    if result.kind == "cuped" and result.variance_reduction is not None:
        out.print(f"CUPED variance reduction: {result.variance_reduction:.1%}")
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}")
    for line in verdicts(result):
        out.print(escape(line))


def demo_step(store: EventStore, out_dir: Path) -> dict[str, Any]:
    """What `cartlift demo` shows of experiments: define a test, assign the store's users, analyse conversion.

    Works on whatever ``events`` table the store has (units are users, the metric is "purchased
    after exposure"). The simulated traffic did not see any variant, so this is an A/A test: it
    checks the pipeline (assignment, SRM, analysis) and should find no difference.
    """
    from cartlift.experiments import (
        AnalysisConfig,
        Experiment,
        analyze_funnel,
        analyze_store,
        expose_event_users,
        save_experiment,
        verdicts,
    )

    if store.count("events") == 0:
        return {"skipped": "the store has no events"}
    name = "demo_aa_checkout"
    save_experiment(store, Experiment(name, variants=("control", "treatment"), salt="demo-aa-1"))
    exposure = expose_event_users(store, name)
    result = analyze_store(store, name, "purchased", config=AnalysisConfig())
    bayes = analyze_store(store, name, "purchased", config=AnalysisConfig(method="bayesian"))
    funnel = analyze_funnel(store, name)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "experiment.json"
    document = {
        "experiment": name,
        "exposure": exposure,
        "purchased": result.to_dict(),
        "purchased_bayesian": bayes.to_dict(),
        "funnel": {k: v.to_dict() for k, v in funnel.items()},
    }
    path.write_text(jsonlib.dumps(document, indent=2, default=str))
    treatment = result.variant("treatment")
    return {
        "experiment": name,
        "units": sum(v.n for v in result.variants),
        "srm_p_value": result.srm_p_value,
        "control_conversion": result.variant("control").mean,
        "treatment_conversion": treatment.mean,
        "lift": treatment.lift,
        "p_value": treatment.p_value,
        "chance_to_beat_control": treatment.chance_to_beat_control,
        "verdict": " ".join(verdicts(result)),
        "file": str(path),
    }

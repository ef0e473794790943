"""`cartlift serve`, `cartlift keys create` and `cartlift train --all`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Final, TypedDict

import typer

from cartlift.cli._common import (
    EngineOption,
    EventsOption,
    JsonOption,
    SparkMasterOption,
    console,
    emit_json,
    fail,
    guarded,
    out,
)

StoreOption = Annotated[
    str,
    typer.Option(
        "--db",
        envvar="CARTLIFT_DB",
        help="The store: a DuckDB file, or postgresql://user@host/db[?schema=NAME].",
    ),
]
ModelDirOption = Annotated[
    Path | None,
    typer.Option("--model-dir", help="The model registry [default: models/ beside a DuckDB store]."),
]


class UvicornOptions(TypedDict):
    """The uvicorn settings `cartlift serve` runs with (besides host, port, workers, log level)."""

    loop: str
    http: str
    access_log: bool
    timeout_graceful_shutdown: int


UVICORN_OPTIONS: Final[UvicornOptions] = {
    "loop": "auto",  # uvloop where installed (uvicorn[standard]), else asyncio
    "http": "auto",  # httptools where installed, else h11
    "access_log": False,
    "timeout_graceful_shutdown": 10,
}
"""``benchmarks/service.py`` runs its bare reference endpoint with these same settings, so the
ratio it prints compares the apps and nothing else."""


def register(app: typer.Typer) -> None:
    """Add the service commands to ``app``."""

    @app.command()
    @guarded
    def serve(
        db: StoreOption = "cartlift.duckdb",
        port: Annotated[int, typer.Option("--port", "-p", help="TCP port.")] = 8000,
        host: Annotated[
            str, typer.Option(help="Address to bind (0.0.0.0 to accept other machines).")
        ] = "127.0.0.1",
        redis: Annotated[
            str | None, typer.Option("--redis", help="redis:// URL for live session state shared by workers.")
        ] = None,
        model_dir: ModelDirOption = None,
        workers: Annotated[
            int, typer.Option(help="Worker processes (PostgreSQL only: a DuckDB file has one writer).")
        ] = 1,
        log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    ) -> None:
        """Run the HTTP API and the dashboard (docs at /docs, dashboard at /)."""
        import uvicorn
        from pydantic import ValidationError

        from cartlift.serve import ServeSettings

        overrides: dict[str, object] = {"db": db}
        if redis:
            overrides["redis"] = redis
        if model_dir is not None:
            overrides["model_dir"] = model_dir
        try:
            settings = ServeSettings(**overrides)  # type: ignore[arg-type]  # fail fast, before workers start
        except ValidationError as e:
            raise fail(f"invalid service settings: {e}") from None
        if workers > 1 and not settings.is_postgres:
            raise fail(
                "--workers > 1 needs a PostgreSQL store: a DuckDB file has exactly one writer process."
            )
        # workers are new processes: they read the settings from the environment
        os.environ["CARTLIFT_SERVE_DB"] = db
        if redis:
            os.environ["CARTLIFT_SERVE_REDIS"] = redis
        if model_dir is not None:
            os.environ["CARTLIFT_SERVE_MODEL_DIR"] = str(model_dir)
        console.print(
            f"cartlift serving {'PostgreSQL' if settings.is_postgres else db} on http://{host}:{port}"
        )
        uvicorn.run(
            "cartlift.serve:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            **UVICORN_OPTIONS,
        )

    keys = typer.Typer(help="API keys of the service.", no_args_is_help=True)
    app.add_typer(keys, name="keys")

    @keys.command("create")
    @guarded
    def keys_create(
        scope: Annotated[
            str,
            typer.Option(
                help="ingest (post events), read (recommendations, risk), admin, or track "
                "(the storefront tracker's publishable key; give its --origin)."
            ),
        ],
        db: StoreOption = "cartlift.duckdb",
        rate_limit: Annotated[
            float | None, typer.Option("--rate-limit", help="Requests per second for this key.")
        ] = None,
        label: Annotated[str | None, typer.Option(help="A note to recognise the key by.")] = None,
        origin: Annotated[
            list[str] | None,
            typer.Option(
                "--origin", help="With --scope track: a page origin allowed to use the key (repeatable)."
            ),
        ] = None,
    ) -> None:
        """Create an API key; the key is printed alone on the last line (only its hash is stored)."""
        from cartlift.serve._keys import check_scope, track_origins
        from cartlift.serve._storage import create_key_in_store

        origins = track_origins(check_scope(scope), origin or [])
        key, key_id = create_key_in_store(
            db, scope=scope, rate_limit=rate_limit, label=label, origins=origins
        )
        console.print(f"created key {key_id}… with scope {scope}; copy it now, it is not shown again:")
        out.print(key, soft_wrap=True, highlight=False)

    @app.command("restore-link")
    @guarded
    def restore_link_command(
        cart_id: Annotated[str, typer.Argument(help="The cart: its session id (a decision's cart_id).")],
        url: Annotated[
            str, typer.Option(help="The shop's page the link lands on, e.g. https://shop.example/cart.")
        ],
        days: Annotated[float, typer.Option(help="Days the link stays valid.")] = 7.0,
    ) -> None:
        """Print a signed link that restores a cart on the shop's page (the tracker follows it).

        Signed with CARTLIFT_SERVE_RESTORE_SECRET, the secret `cartlift serve` checks it with.
        """
        from cartlift.integrations import restore_link
        from cartlift.serve import ServeSettings

        secret = ServeSettings().restore_secret
        if secret is None:
            raise fail("set CARTLIFT_SERVE_RESTORE_SECRET (the same secret `cartlift serve` runs with)")
        out.print(
            restore_link(url, cart_id, secret.get_secret_value(), days=days), soft_wrap=True, highlight=False
        )

    @app.command()
    @guarded
    def train(
        all_models: Annotated[
            bool, typer.Option("--all", help="Train every model the service serves.")
        ] = False,
        db: StoreOption = "cartlift.duckdb",
        model_dir: Annotated[
            Path | None,
            typer.Option(
                "--model-dir",
                "--registry",
                help="The model registry [default: models/ beside a DuckDB store].",
            ),
        ] = None,
        recommender: Annotated[
            str | None,
            typer.Option(
                help="The recommender to fit (see `cartlift recommend models`) [default: itemknn; "
                "als, fitted on Spark, with --engine spark]."
            ),
        ] = None,
        engine: EngineOption = "duckdb",
        events: EventsOption = None,
        products: Annotated[
            Path | None,
            typer.Option("--products", help="With --events: the exported catalog (Parquet)."),
        ] = None,
        spark_master: SparkMasterOption = None,
        json: JsonOption = False,
    ) -> None:
        """Retrain the served models on the store and publish new versions to the registry.

        With --engine spark the recommender is ALS fitted on Spark MLlib and the abandonment model
        learns from cart features computed by Spark SQL (from --events, or the store's tables).
        A running service picks them up with POST /v1/admin/reload (or trains itself with
        POST /v1/admin/train).
        """
        from cartlift.serve import ModelRegistry, ServeSettings
        from cartlift.serve._train import train_from_db
        from cartlift.spark import SparkUnavailableError, check_engine

        if not all_models:
            raise fail(
                "say which models: --all (the recommender, the popularity fallback, the abandonment model)"
            )
        try:
            name = check_engine(engine)
        except SparkUnavailableError as e:
            raise fail(str(e)) from None
        settings = ServeSettings(db=db, model_dir=model_dir)
        registry = ModelRegistry(settings.registry_dir())
        if name == "spark":
            from cartlift.cli._common import open_store
            from cartlift.serve import spark_train_all
            from cartlift.spark._tables import parquet_tables

            with parquet_tables(events, products, lambda: open_store(Path(db), read_only=True)) as (ev, pr):
                result = spark_train_all(
                    ev, registry, products=pr, master=spark_master, recommender=recommender or "als"
                )
        else:
            if events is not None:
                raise fail("--events is read by --engine spark; the DuckDB engine trains on --db.")
            result = train_from_db(db, registry, recommender=recommender or "itemknn")
        if json:
            emit_json({"registry": str(registry.root), "engine": name, "models": result})
            return
        for kind, info in result.items():
            if "error" in info:
                console.print(f"[yellow]{kind}: not trained[/]: {info['error']}")
            else:
                out.print(f"{kind}: {info.get('name', kind)} {info['version']} in {registry.root / kind}")

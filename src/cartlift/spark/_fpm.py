"""Frequent itemsets and "bought together" rules with Spark MLlib's FPGrowth (PFP, Li et al. 2008).

The result is cartlift's own `FrequentItemsets` (item ids sorted as `basket_matrix` sorts them),
so `cartlift.recommend.association_rules` and `AssociationRules` use it unchanged, and the same
thresholds hold: MLlib keeps itemsets with ``count >= ceil(min_support * n)``, and the
``support >= min_support`` check of mlxtend is applied on top.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cartlift.errors import DataError, InvalidParameterError
from cartlift.recommend._rules import FrequentItemsets

__all__ = ["baskets_from_events", "spark_frequent_itemsets"]


def baskets_from_events(events: Any) -> Any:
    """One row per order, ``items``: the distinct product ids (strings) of its purchase events
    (an order is its ``order_id``, or without one its session, as in RFM)."""
    from pyspark.sql import functions as F

    purchases = events.where((F.col("event_type") == "purchase") & F.col("product_id").isNotNull())
    key = F.coalesce(F.col("order_id").cast("string"), F.col("session_id").cast("string"))
    return purchases.groupBy(key.alias("basket")).agg(
        F.collect_set(F.col("product_id").cast("string")).alias("items")
    )


def spark_frequent_itemsets(
    baskets: Any,
    min_support: float,
    *,
    max_len: int | None = None,
    items_col: str = "items",
    num_partitions: int | None = None,
) -> FrequentItemsets:
    """All itemsets in at least ``min_support`` of the baskets, mined by MLlib FPGrowth.

    Parameters
    ----------
    baskets : pyspark.sql.DataFrame
        A column ``items_col`` of arrays of item ids (duplicates in a basket are dropped).
    min_support : float
        In (0, 1].
    max_len : int, optional
        Longest itemset kept.
    num_partitions : int, optional
        FPGrowth's ``numPartitions`` (default: the input's).

    Returns
    -------
    FrequentItemsets
        Equal to `cartlift.recommend.frequent_itemsets` on the same baskets.
    """
    if not 0 < min_support <= 1:
        raise InvalidParameterError(f"min_support must be in (0, 1]. Got {min_support!r} instead.")
    if max_len is not None and max_len < 1:
        raise InvalidParameterError(f"max_len must be an int >= 1 or None. Got {max_len!r} instead.")
    from pyspark.ml.fpm import FPGrowth
    from pyspark.sql import functions as F

    data = baskets.select(F.array_distinct(F.col(items_col).cast("array<string>")).alias("items"))
    data = data.where(F.size("items") > 0).cache()
    try:
        n = data.count()
        if n == 0:
            raise DataError("No baskets to mine: every basket is empty.")
        item_ids = np.asarray(
            sorted(r[0] for r in data.select(F.explode("items")).distinct().collect()), dtype=str
        )
        fp = FPGrowth(itemsCol="items", minSupport=float(min_support), minConfidence=0.0)
        if num_partitions is not None:
            fp = fp.setNumPartitions(num_partitions)
        found = fp.fit(data).freqItemsets
        if max_len is not None:
            found = found.where(F.size("items") <= max_len)
        rows = found.collect()
    finally:
        data.unpersist()
    index = {item: i for i, item in enumerate(item_ids)}
    pairs = sorted(
        (tuple(sorted(index[i] for i in r["items"])), int(r["freq"]))
        for r in rows
        if int(r["freq"]) / float(n) >= min_support
    )
    pairs.sort(key=lambda p: (len(p[0]), p[0]))
    return FrequentItemsets(
        [p[0] for p in pairs], np.asarray([p[1] for p in pairs], np.int64), int(n), item_ids
    )

"""ALS on Spark MLlib whose factors load into cartlift's own `cartlift.recommend.ALS`.

`SparkALS` is an `ALS` whose fit runs ``pyspark.ml.recommendation.ALS`` (implicit preferences,
Hu, Koren and Volinsky 2008) on the interaction matrix; recommending, folding in new users,
similar items and ``save`` are the embedded class's. ``save`` writes an ``ALS`` file, so the
service and the embedded path load the artifact with ``ALS.load`` without pyspark.

MLlib's conventions differ from implicit's in two places, so the same numbers are not the same
model: the confidence is ``1 + alpha * r`` (implicit: ``alpha * r``) and ``regParam`` is scaled
by each user's and item's number of ratings (ALS-WR, Zhou et al. 2008).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from cartlift._params import Constraint
from cartlift._random import RandomState, check_random_state
from cartlift.recommend import ALS
from cartlift.recommend._interactions import Interactions

__all__ = ["SparkALS", "spark_als"]


class SparkALS(ALS):
    """Implicit-feedback ALS fitted on Spark MLlib; the fitted model is a plain cartlift `ALS`.

    Parameters
    ----------
    factors, regularization, alpha, iterations, random_state
        As `cartlift.recommend.ALS` (``regularization`` is MLlib's ``regParam``).
    spark_master : str, optional
        The master URL of the session `cartlift.spark.spark_session` creates (default ``local[*]``).

    Attributes
    ----------
    user_factors_ : ndarray of float32, shape (n_users, factors)
    item_factors_ : ndarray of float32, shape (n_items, factors)
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        **ALS._parameter_constraints,
        "spark_master": [str, None],
    }

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.05,
        alpha: float = 10.0,
        iterations: int = 15,
        random_state: RandomState = None,
        spark_master: str | None = None,
    ) -> None:
        super().__init__(
            factors=factors,
            regularization=regularization,
            alpha=alpha,
            iterations=iterations,
            random_state=random_state,
        )
        self.spark_master = spark_master

    def _fit(self, interactions: Interactions) -> None:
        from pyspark.ml.recommendation import ALS as MLlibALS
        from pyspark.sql import types as T

        from cartlift.spark._session import spark_session

        spark = spark_session(self.spark_master)
        seed = int(check_random_state(self.random_state).integers(2**31 - 1))
        m = self.user_items_.tocoo()
        schema = T.StructType(
            [
                T.StructField("user", T.IntegerType(), False),
                T.StructField("item", T.IntegerType(), False),
                T.StructField("rating", T.FloatType(), False),
            ]
        )
        rows = list(zip(m.row.tolist(), m.col.tolist(), m.data.astype(float).tolist(), strict=True))
        ratings = spark.createDataFrame(rows, schema)
        model = MLlibALS(
            rank=self.factors,
            maxIter=self.iterations,
            regParam=self.regularization,
            alpha=self.alpha,
            implicitPrefs=True,
            userCol="user",
            itemCol="item",
            ratingCol="rating",
            nonnegative=False,
            seed=seed,
            coldStartStrategy="drop",
        ).fit(ratings)
        self.user_factors_ = _dense(model.userFactors.collect(), m.shape[0], self.factors)
        self.item_factors_ = _dense(model.itemFactors.collect(), m.shape[1], self.factors)

    def to_als(self) -> ALS:
        """The same fitted model as a plain `cartlift.recommend.ALS` (no Spark needed to use it)."""
        self._check_fitted()
        out = ALS(
            factors=self.factors,
            regularization=self.regularization,
            alpha=self.alpha,
            iterations=self.iterations,
            random_state=self.random_state,
        )
        for name, value in vars(self).items():
            if name.endswith("_") and not name.startswith("_"):
                setattr(out, name, value)
        return out

    def save(self, path: Any) -> Any:
        """Save as an ``ALS`` file (see `to_als`): ``ALS.load`` reads it without pyspark."""
        return self.to_als().save(path)


def _dense(rows: list[Any], n: int, k: int) -> np.ndarray:
    out = np.zeros((n, k), np.float32)
    for r in rows:
        out[int(r["id"])] = np.asarray(r["features"], np.float32)
    return out


def spark_als(interactions: Interactions, **params: Any) -> ALS:
    """Fit `SparkALS` with ``params`` on ``interactions`` and return it as a plain `ALS`."""
    return SparkALS(**params).fit(interactions).to_als()

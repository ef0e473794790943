"""Variants of the `auto` LightGBM candidates on an online-shoppers-shaped table, by 5-fold CV on
the training rows only (the test rows of the 80/20 split are never read).

``python tests/predict/auto_variants.py SEED`` prints each variant's mean cross-validated ROC-AUC
and its spread over folds. It is how the README's note on monotone constraints and smaller trees
was measured; not collected by pytest (it fits 25 models).
"""

from __future__ import annotations

import sys
import time

import lightgbm as lgb
import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split

from cartlift.predict._encode import TableEncoder
from cartlift.simulate._shoppers import shopper_sessions


def main(seed: int) -> None:
    table = shopper_sessions(random_state=seed)
    y = table.pop("Revenue").to_numpy().astype(int)
    X_train, _, y_train, _ = train_test_split(table, y, test_size=0.2, random_state=0)
    encoder = TableEncoder().fit(X_train)
    X, cats = encoder.transform(X_train), encoder.categorical_indices
    columns = list(encoder.columns_)
    base = {"objective": "binary", "verbose": -1, "num_threads": 1, "deterministic": True, "seed": 0}
    plain = {"learning_rate": 0.03, "num_leaves": 15, "min_data_in_leaf": 20, "lambda_l2": 0.0}
    slow = {
        "learning_rate": 0.01, "num_leaves": 15, "min_data_in_leaf": 30, "bagging_fraction": 0.8,
        "bagging_freq": 1, "feature_fraction": 0.7, "lambda_l2": 1.0,
    }  # fmt: skip
    up = [int(c == "PageValues") for c in columns]  # more page value, never a lower P(buy)
    variants = {
        "plain (the bar)": (plain, 300),
        "slow (auto's)": (slow, 900),
        "slow, PageValues monotone": ({**slow, "monotone_constraints": up}, 900),
        "slow, 7 leaves": ({**slow, "num_leaves": 7, "min_data_in_leaf": 50}, 1200),
        "slow, category smoothing": ({**slow, "cat_smooth": 30, "min_data_per_group": 50, "cat_l2": 10}, 900),
    }
    folds = list(StratifiedKFold(5, shuffle=True, random_state=0).split(X, y_train))
    print(f"categorical columns: {[columns[i] for i in cats]}")
    for name, (params, rounds) in variants.items():
        start, aucs = time.perf_counter(), []
        for tr, te in folds:
            data = lgb.Dataset(X[tr], y_train[tr], categorical_feature=cats)
            booster = lgb.train({**base, **params}, data, num_boost_round=rounds)
            aucs.append(roc_auc_score(y_train[te], booster.predict(X[te])))
        took = time.perf_counter() - start
        print(f"{name:28s} CV ROC-AUC {np.mean(aucs):.4f} (sd {np.std(aucs, ddof=1):.4f})  {took:.0f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 0)

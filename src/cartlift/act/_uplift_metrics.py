"""Uplift metrics on randomised data: Qini and uplift curves, their normalised areas, uplift@k.

Sort the rows by predicted uplift, best first, and look at the ``t`` first rows (cumulative sums
over the treated ``T``/control ``C`` rows among them, ``Y`` their outcomes):

- Qini curve (Radcliffe 2007): ``Q(t) = Y_T(t) - Y_C(t) * N_T(t) / N_C(t)``, the extra conversions
  among the ``t`` targeted;
- uplift curve (Rzepakowski & Jaroszewicz 2012): ``U(t) = (Y_T(t)/N_T(t) - Y_C(t)/N_C(t)) * t``.

Both are evaluated at every distinct predicted value (ties move together) and start at (0, 0).
Scores:

- `qini_auc_score`: ``(A(model) - A(random)) / (A(perfect) - A(random))`` with ``A`` the area
  under the Qini curve and "random" the straight line to the curve's end: random targeting
  scores 0, the perfect ranking 1 (scikit-uplift's ``qini_auc_score``);
- `uplift_auc_score`: the same normalisation of the uplift curve (scikit-uplift's);
- `auuc_score`: the area under the uplift curve with both axes scaled to 1
  (``A(model) / (n * U(n))``), so random targeting scores 0.5 and better rankings more
  (CausalML's normalised AUUC);
- `uplift_at_k`: conversion of the treated minus the control among the top ``k`` share.

References: N. J. Radcliffe (2007), "Using control groups to target on predicted lift", Direct
Marketing Analytics Journal 3:14-21; P. Rzepakowski, S. Jaroszewicz (2012), "Decision trees for
uplift modeling with single and multiple treatments", KAIS 32:303-327; F. Devriendt, T. Guns,
W. Verbeke (2020), "Learning to rank for uplift modeling", arXiv:2002.05897.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cartlift.errors import DataError, InvalidParameterError

__all__ = [
    "auuc_score",
    "evaluate_uplift",
    "perfect_qini_curve",
    "perfect_uplift_curve",
    "qini_auc_score",
    "qini_curve",
    "true_qini_score",
    "uplift_at_k",
    "uplift_auc_score",
    "uplift_curve",
]


def _arrays(
    y_true: Any, uplift: Any, treatment: Any, *, binary_y: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=float).ravel()
    u = np.asarray(uplift, dtype=float).ravel()
    t = np.asarray(treatment).ravel()
    if not (y.shape == u.shape == t.shape):
        raise DataError(
            f"y_true, uplift and treatment must have the same length. Got {y.shape[0]}, {u.shape[0]} and {t.shape[0]}."
        )
    if y.size == 0:
        raise DataError("No rows to score: y_true is empty.")
    if not np.isin(t, (0, 1)).all():
        raise DataError(f"treatment must be 0/1 (1 = treated). Got values {np.unique(t)[:5].tolist()}.")
    t = t.astype(float)
    if t.min() == t.max():
        raise DataError("Both groups are needed: treatment is all " + ("treated." if t[0] else "control."))
    if binary_y and not np.isin(y, (0.0, 1.0)).all():
        raise DataError(
            f"y_true must be binary (0/1) for this score. Got values like {np.unique(y)[:5].tolist()}."
        )
    if not (np.isfinite(y).all() and np.isfinite(u).all()):
        raise DataError("y_true and uplift must be finite (no NaN or inf).")
    return y, u, t


def _descending(score: np.ndarray) -> np.ndarray:
    """Rows by score, best first; tied rows in reverse input order (scikit-uplift's order, which
    only matters for `uplift_at_k`: curves are read at tie boundaries)."""
    return np.argsort(score, kind="mergesort")[::-1]


def _cumulative(y: np.ndarray, u: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, ...]:
    order = _descending(u)
    y, u, t = y[order], u[order], t[order]
    # one point per distinct predicted value: tied rows cannot be told apart by the model
    ends = np.r_[np.flatnonzero(np.diff(u)), u.size - 1]
    n_t = np.cumsum(t)[ends]
    y_t = np.cumsum(y * t)[ends]
    y_c = np.cumsum(y * (1.0 - t))[ends]
    n_all = (ends + 1).astype(float)
    return n_all, n_t, n_all - n_t, y_t, y_c


def _from_zero(x: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.r_[0.0, x], np.r_[0.0, v]


def qini_curve(y_true: Any, uplift: Any, treatment: Any) -> tuple[np.ndarray, np.ndarray]:
    """The Qini curve: ``(t, Y_T(t) - Y_C(t) N_T(t) / N_C(t))`` at each distinct predicted uplift.

    Parameters
    ----------
    y_true : array-like, shape (n,)
        Outcomes (binary or continuous).
    uplift : array-like, shape (n,)
        Predicted uplift (higher = target first).
    treatment : array-like of 0/1, shape (n,)

    Returns
    -------
    x, q : ndarray
        Rows targeted and the curve's value; both start at 0.
    """
    y, u, t = _arrays(y_true, uplift, treatment, binary_y=False)
    n_all, n_t, n_c, y_t, y_c = _cumulative(y, u, t)
    ratio = np.divide(n_t, n_c, out=np.zeros_like(n_t), where=n_c != 0)
    return _from_zero(n_all, y_t - y_c * ratio)


def uplift_curve(y_true: Any, uplift: Any, treatment: Any) -> tuple[np.ndarray, np.ndarray]:
    """The uplift curve: ``(t, (Y_T(t)/N_T(t) - Y_C(t)/N_C(t)) t)``; an empty group counts as rate 0."""
    y, u, t = _arrays(y_true, uplift, treatment, binary_y=False)
    n_all, n_t, n_c, y_t, y_c = _cumulative(y, u, t)
    r_t = np.divide(y_t, n_t, out=np.zeros_like(y_t), where=n_t != 0)
    r_c = np.divide(y_c, n_c, out=np.zeros_like(y_c), where=n_c != 0)
    return _from_zero(n_all, (r_t - r_c) * n_all)


def perfect_qini_curve(
    y_true: Any, treatment: Any, negative_effect: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """The best possible Qini curve: treated responders first, control responders last.

    With ``negative_effect=False`` the curve rises straight to the total gain (no harm possible).
    """
    y, _, t = _arrays(y_true, np.zeros(np.size(y_true)), treatment, binary_y=True)
    if negative_effect:
        return qini_curve(y, y * t - y * (1.0 - t), t)
    gain = y[t == 1].sum() - (t == 1).sum() * y[t == 0].sum() / (t == 0).sum()
    return np.array([0.0, gain, float(y.size)]), np.array([0.0, gain, gain])


def perfect_uplift_curve(y_true: Any, treatment: Any) -> tuple[np.ndarray, np.ndarray]:
    """The best possible uplift curve (treated responders and control non-responders first)."""
    y, _, t = _arrays(y_true, np.zeros(np.size(y_true)), treatment, binary_y=True)
    control_responders = np.sum((y == 1) & (t == 0))
    treated_non_responders = np.sum((y == 0) & (t == 1))
    summand = y if control_responders > treated_non_responders else t
    return uplift_curve(y, 2.0 * (y == t) + summand, t)


def _normalised(actual: tuple[np.ndarray, np.ndarray], perfect: tuple[np.ndarray, np.ndarray]) -> float:
    x_end, v_end = perfect[0][-1], perfect[1][-1]
    base = 0.5 * x_end * v_end  # the straight line from (0, 0) to the curve's end
    best = float(np.trapezoid(perfect[1], perfect[0])) - base
    got = float(np.trapezoid(actual[1], actual[0])) - base
    return got / best if best != 0 else float("nan")


def qini_auc_score(y_true: Any, uplift: Any, treatment: Any, negative_effect: bool = True) -> float:
    """The Qini coefficient, normalised: 0 for random targeting, 1 for the perfect ranking.

    ``(A(model) - A(random)) / (A(perfect) - A(random))`` with ``A`` the area under the Qini
    curve. NaN when the perfect curve is no better than random (no effect at all).
    """
    if not isinstance(negative_effect, bool):
        raise InvalidParameterError(f"negative_effect must be a bool. Got {negative_effect!r} instead.")
    y, u, t = _arrays(y_true, uplift, treatment, binary_y=True)
    return _normalised(qini_curve(y, u, t), perfect_qini_curve(y, t, negative_effect))


def uplift_auc_score(y_true: Any, uplift: Any, treatment: Any) -> float:
    """Area under the uplift curve normalised like the Qini coefficient (random 0, perfect 1)."""
    y, u, t = _arrays(y_true, uplift, treatment, binary_y=True)
    return _normalised(uplift_curve(y, u, t), perfect_uplift_curve(y, t))


def auuc_score(y_true: Any, uplift: Any, treatment: Any) -> float:
    """Area under the uplift curve on the unit square: random targeting 0.5, a better ranking more.

    ``AUUC = A(model) / (n * |U(n)|)``: both axes divided by their end values, ``U(n)`` being
    the overall effect times ``n``. NaN when the overall effect is zero.
    """
    x, v = uplift_curve(y_true, uplift, treatment)
    scale = x[-1] * abs(v[-1])
    return float(np.trapezoid(v, x)) / scale if scale else float("nan")


def uplift_at_k(y_true: Any, uplift: Any, treatment: Any, k: float = 0.3, strategy: str = "overall") -> float:
    """Treated minus control conversion among the top ``k`` of rows by predicted uplift.

    Parameters
    ----------
    k : float in (0, 1) or int >= 1
        Share (float) or number (int) of rows.
    strategy : {"overall", "by_group"}
        ``overall``: the top ``k`` of all rows, then each group's rate among them;
        ``by_group``: the top ``k`` of each group separately (scikit-uplift's definitions).
    """
    y, u, t = _arrays(y_true, uplift, treatment, binary_y=False)
    if strategy not in ("overall", "by_group"):
        raise InvalidParameterError(f"strategy must be 'overall' or 'by_group'. Got {strategy!r} instead.")
    n = y.size
    is_int = isinstance(k, int | np.integer) and not isinstance(k, bool)
    is_float = isinstance(k, float | np.floating)
    if not ((is_int and 0 < k < n) or (is_float and 0.0 < k < 1.0)):
        raise InvalidParameterError(
            f"k must be a float in (0, 1) or an int in [1, {n - 1}]. Got {k!r} instead."
        )
    order = _descending(u)
    ys, ts = y[order], t[order]
    if strategy == "overall":
        size = int(n * k) if is_float else int(k)
        top_y, top_t = ys[:size], ts[:size]
        treated, control = top_y[top_t == 1], top_y[top_t == 0]
    else:
        n_t = int((t == 1).sum() * k) if is_float else int(k)
        n_c = int((t == 0).sum() * k) if is_float else int(k)
        treated, control = ys[ts == 1][:n_t], ys[ts == 0][:n_c]
    if treated.size == 0 or control.size == 0:
        return float("nan")
    return float(treated.mean() - control.mean())


def true_qini_score(true_uplift: Any, uplift: Any) -> float:
    """Qini coefficient against *known* individual effects (simulated data): random 0, perfect 1.

    The gain curve is the cumulative true effect ``G(t) = sum of tau_i`` over the ``t`` rows
    ranked first by ``uplift``; it is normalised like `qini_auc_score`, the perfect ranking
    sorting by ``tau`` itself.
    """
    tau = np.asarray(true_uplift, dtype=float).ravel()
    u = np.asarray(uplift, dtype=float).ravel()
    if tau.shape != u.shape or tau.size == 0:
        raise DataError(
            f"true_uplift and uplift must be non-empty and of one length. Got {tau.size} and {u.size}."
        )

    def curve(score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        order = _descending(score)
        s, g = score[order], np.cumsum(tau[order])
        ends = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
        return _from_zero((ends + 1).astype(float), g[ends])

    return _normalised(curve(u), curve(tau))


def evaluate_uplift(
    y_true: Any,
    arms: Any,
    uplift: np.ndarray,
    treatments: Sequence[Any],
    control: Any,
    *,
    k: float = 0.3,
    curve_points: int = 21,
) -> dict[str, dict[str, Any]]:
    """Held-out scores of a multi-treatment uplift model, one treatment against the control at a time.

    Parameters
    ----------
    y_true : array-like, shape (n,)
        Binary outcomes.
    arms : array-like, shape (n,)
        The arm each row received (control or one of ``treatments``).
    uplift : ndarray, shape (n, n_treatments)
        Predicted uplift of each treatment over the control, columns in ``treatments`` order.
    treatments : sequence
        Treatment names.
    control : object
        The control's name in ``arms``.
    k : float
        Share for ``uplift_at_k`` (reported as ``uplift_at_<100 k>``).
    curve_points : int
        Points of the Qini curve returned (at evenly spaced shares of rows, interpolated).

    Returns
    -------
    dict
        Per treatment: ``qini``, ``auuc``, ``uplift_auc``, ``uplift_at_<k>``, ``n_treated``,
        ``n_control``, ``ate`` (difference of means) and ``qini_curve`` (``share``, ``gain``).
    """
    y = np.asarray(y_true, dtype=float).ravel()
    a = np.asarray(arms, dtype=object).ravel()
    u = np.asarray(uplift, dtype=float)
    if u.ndim != 2 or u.shape != (y.size, len(treatments)) or a.size != y.size:
        raise DataError(
            f"uplift must have shape (n_rows, n_treatments) = ({y.size}, {len(treatments)}) and arms {y.size} "
            f"values. Got {u.shape} and {a.size}."
        )
    key = f"uplift_at_{round(100 * k)}"
    out: dict[str, dict[str, Any]] = {}
    for j, name in enumerate(treatments):
        rows = (a == name) | (a == control)
        yt, tt, ut = y[rows], (a[rows] == name).astype(int), u[rows, j]
        x, q = qini_curve(yt, ut, tt)
        shares = np.linspace(0.0, 1.0, curve_points)
        out[str(name)] = {
            "qini": qini_auc_score(yt, ut, tt),
            "auuc": auuc_score(yt, ut, tt),
            "uplift_auc": uplift_auc_score(yt, ut, tt),
            key: uplift_at_k(yt, ut, tt, k=k),
            "n_treated": int(tt.sum()),
            "n_control": int((tt == 0).sum()),
            "ate": float(yt[tt == 1].mean() - yt[tt == 0].mean()),
            "qini_curve": {
                "share": shares.round(4).tolist(),
                "gain": np.interp(shares * x[-1], x, q).tolist(),
            },
        }
    return out

"""BG/NBD and Gamma-Gamma customer-lifetime models, fitted by maximum likelihood.

BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way", *Marketing Science*
24(2)): while alive, a customer buys as a Poisson process with rate lambda ~ Gamma(r, alpha);
after each purchase they drop out with probability p ~ Beta(a, b). Gamma-Gamma (Fader, Hardie
& Lee 2005, "RFM and CLV: using iso-value curves", *J. Marketing Research* 42(4); Colombo &
Jiang 1999): a customer's spend per transaction is Gamma(p, nu) with nu ~ Gamma(q, v),
independent of the purchase process.

Both are fitted on log-parameters with BFGS from several starts, on rows grouped by their
sufficient statistics (x, t_x, T) with weights, so 23,570 CDNOW customers become ~1,000 rows.
A fit that does not converge raises `ConvergenceError` saying why; it never returns NaN.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy import optimize, special

from cartlift._params import Interval, validate_params
from cartlift.errors import ConvergenceError, DataError, NotFittedError

__all__ = ["BGNBD", "GammaGamma"]

ArrayLike = Any
_RUN_OFF = 18.0  # |log parameter| beyond this (a factor e^18 ~ 6.6e7) means the optimum is at infinity


def _arrays(*cols: ArrayLike) -> list[np.ndarray]:
    return [np.asarray(c, dtype=float).ravel() for c in cols]


def _check_rfm(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> None:
    """Refuse data the model cannot describe, with the count of offending rows."""
    if not (x.size == t_x.size == T.size):
        raise DataError(
            f"frequency, recency and T must have the same length. Got {x.size}, {t_x.size}, {T.size}."
        )
    if x.size == 0:
        raise DataError("No customers to fit: the summary is empty.")
    checks = [
        (~np.isfinite(x) | ~np.isfinite(t_x) | ~np.isfinite(T), "have a missing or infinite value"),
        ((x < 0) | (x != np.round(x)), "have a frequency that is not a whole number >= 0"),
        (T < 0, "have T < 0 (T is the time from the first purchase to the end of observation)"),
        ((t_x < 0) | (t_x > T * (1 + 1e-9)), "have a recency outside [0, T]"),
        ((x == 0) & (t_x > 0), "have recency > 0 but frequency 0 (recency is 0 without repeat purchases)"),
    ]
    for bad, what in checks:
        n = int(bad.sum())
        if n:
            raise DataError(
                f"{n:,} customers {what}: first at row {int(np.argmax(bad))}. Check the column mapping "
                "(frequency counts repeat purchases only; recency and T are in the same time unit)."
            )


def _group(*cols: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Unique rows and their counts (the likelihood only depends on the sufficient statistics)."""
    stacked = np.column_stack(cols)
    uniq, counts = np.unique(stacked, axis=0, return_counts=True)
    return [uniq[:, i] for i in range(uniq.shape[1])], counts.astype(float)


def bgnbd_log_likelihood(params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    r"""Per-customer BG/NBD log-likelihood (Fader, Hardie & Lee 2005, eq. 6).

    .. math::

        \ln L = \ln\Gamma(r+x) - \ln\Gamma(r) + r\ln\alpha + \ln\Gamma(a+b) + \ln\Gamma(b+x)
                - \ln\Gamma(b) - \ln\Gamma(a+b+x)
                + \ln\!\Big[(\alpha+T)^{-(r+x)} + \delta_{x>0}\,\tfrac{a}{b+x-1}\,(\alpha+t_x)^{-(r+x)}\Big]
    """
    r, alpha, a, b = params
    a1 = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    a2 = special.gammaln(a + b) + special.gammaln(b + x) - special.gammaln(b) - special.gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(
            x > 0, np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) - (r + x) * np.log(alpha + t_x), -np.inf
        )
    return np.asarray(a1 + a2 + np.logaddexp(a3, a4))


def bgnbd_common_dropout_log_likelihood(
    params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> np.ndarray:
    r"""Per-customer log-likelihood of BG/NBD with one drop-out probability ``p`` for every customer.

    The limit of `bgnbd_log_likelihood` as :math:`a, b \to \infty` with :math:`a / (a + b) = p`
    (the Beta mixing distribution collapses onto ``p``):

    .. math::

        \ln L = \ln\Gamma(r+x) - \ln\Gamma(r) + r\ln\alpha + x\ln(1-p)
                + \ln\Big[(\alpha+T)^{-(r+x)} + \delta_{x>0}\,\tfrac{p}{1-p}\,(\alpha+t_x)^{-(r+x)}\Big]
    """
    r, alpha, p = params
    a1 = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha) + x * np.log1p(-p)
    a3 = -(r + x) * np.log(alpha + T)
    a4 = np.where(x > 0, np.log(p) - np.log1p(-p) - (r + x) * np.log(alpha + t_x), -np.inf)
    return np.asarray(a1 + np.logaddexp(a3, a4))


def gamma_gamma_log_likelihood(params: np.ndarray, x: np.ndarray, m: np.ndarray) -> np.ndarray:
    r"""Per-customer Gamma-Gamma log-likelihood of the mean spend :math:`\bar z = m` over :math:`x` transactions.

    .. math::

        \ln f = \ln\Gamma(px+q) - \ln\Gamma(px) - \ln\Gamma(q) + q\ln v + (px-1)\ln m
                + px\ln x - (px+q)\ln(v + x m)
    """
    p, q, v = params
    return np.asarray(
        special.gammaln(p * x + q)
        - special.gammaln(p * x)
        - special.gammaln(q)
        + q * np.log(v)
        + (p * x - 1) * np.log(m)
        + p * x * np.log(x)
        - (p * x + q) * np.log(v + x * m)
    )


class _Ridge(ConvergenceError):
    """A fit that stalled on a flat ridge `explain` recognised (the parameters where it stopped)."""

    def __init__(self, message: str, params: np.ndarray) -> None:
        super().__init__(message)
        self.params = params


def _fit(
    nll: Any,
    starts: list[np.ndarray],
    names: tuple[str, ...],
    model: str,
    tol: float,
    max_iter: int,
    hint: str,
    remedy: str,
    explain: Any = None,
) -> tuple[np.ndarray, float, int]:
    """Minimise ``nll`` over log-parameters from several starts; raise `ConvergenceError` on failure."""
    best: optimize.OptimizeResult | None = None
    reasons = []
    for x0 in starts:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            res = optimize.minimize(nll, x0, method="BFGS", options={"gtol": tol, "maxiter": max_iter})
            if not res.success and np.isfinite(res.fun) and np.all(np.abs(res.x) <= _RUN_OFF):
                # BFGS often stops on "precision loss" right at the optimum: polish with Nelder-Mead
                # (not when a parameter has run off: polishing a divergence only costs time)
                res = optimize.minimize(
                    nll,
                    res.x,
                    method="Nelder-Mead",
                    options={
                        "xatol": 1e-10,
                        "fatol": 1e-12,
                        "maxiter": max_iter * 5,
                        "maxfev": max_iter * 10,
                    },
                )
        if not np.isfinite(res.fun) or not np.all(np.isfinite(res.x)):
            reasons.append("the likelihood is not finite")
            continue
        if best is None or res.fun < best.fun:
            best = res
        if not res.success:
            reasons.append(str(res.message))
    if best is None:
        raise ConvergenceError(
            f"The {model} fit did not converge: {'; '.join(sorted(set(reasons)))}. Check the input columns "
            "(a time unit mix-up makes recency or T meaningless) and that some customers bought again."
        )
    if np.any(np.abs(best.x) > _RUN_OFF):
        i = int(np.argmax(np.abs(best.x)))
        raise ConvergenceError(
            f"The {model} fit did not converge: {names[i]} ran off to {np.exp(best.x[i]):.3g}, so the data do not "
            f"identify it ({hint}). {remedy}"
        )
    grad = optimize.approx_fprime(best.x, nll, 1e-7)
    if not np.all(np.isfinite(grad)) or np.max(np.abs(grad)) > 1e-3:
        why = explain(np.exp(best.x)) if explain is not None else None
        message = (
            f"The {model} fit stopped away from an optimum (largest gradient {np.max(np.abs(grad)):.3g}): "
            + (why or "check the data for extreme values or try a different time unit.")
        )
        raise _Ridge(message, np.exp(best.x)) if why else ConvergenceError(message)
    return np.exp(best.x), float(best.fun), int(best.nit)


def _bgnbd_ridge(params: np.ndarray) -> str | None:
    """Name the usual cause of a stalled BG/NBD fit: a and b growing together along a flat ridge."""
    _, _, a, b = params
    if a > 20 and b > 20:
        return (
            f"a and b grow together (a = {a:.3g}, b = {b:.3g}) while a / (a + b) stays at {a / (a + b):.3g}, "
            "so the data cannot tell how the drop-out probability varies between customers (too few "
            "repeat customers or too short a history). Use more customers or a longer observation period."
        )
    if b > 20 and a / (a + b) < 0.01:
        return (
            f"the drop-out probability after a purchase goes to 0 (a = {a:.3g}, b = {b:.3g}): the history "
            "shows no customer dropping out, so drop-out cannot be estimated (too few repeat customers or "
            "too short a history). Use more customers or a longer observation period."
        )
    return None


class BGNBD:
    """The BG/NBD model of repeat purchases and drop-out, fitted by maximum likelihood.

    Parameters
    ----------
    tol : float
        Gradient tolerance of the optimiser (on the mean log-likelihood).
    max_iter : int
        Iterations per start.

    Attributes
    ----------
    r_, alpha_, a_, b_ : float
        The fitted parameters (purchase rate ~ Gamma(r, alpha); drop-out ~ Beta(a, b)). When the
        likelihood rises without end along the ridge where ``a`` and ``b`` grow together (the data
        show drop-out but not that it varies between customers), the fit is its limit: one
        drop-out probability ``p_`` for everyone (`bgnbd_common_dropout_log_likelihood`), and
        ``a_ = b_ = inf``.
    p_ : float
        The mean drop-out probability after a purchase, :math:`a / (a + b)`.
    common_dropout_ : bool
        True when the fit is that limit.
    log_likelihood_ : float
        Total log-likelihood at the optimum.
    n_customers_ : int

    Examples
    --------
    >>> import pandas as pd
    >>> s = pd.read_csv("cdnow_customers_summary.csv")  # doctest: +SKIP
    >>> m = BGNBD().fit(s["frequency"], s["recency"], s["T"])  # doctest: +SKIP
    >>> round(m.r_, 4), round(m.alpha_, 4), round(m.a_, 4), round(m.b_, 4)  # doctest: +SKIP
    (0.2426, 4.4135, 0.7929, 2.4258)

    References
    ----------
    Fader, Hardie & Lee (2005), "Counting your customers the easy way: an alternative to the
    Pareto/NBD model", *Marketing Science* 24(2), 275-284.
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "tol": [Interval(float, 0, None, closed="neither")],
        "max_iter": [Interval(int, 1, None)],
    }

    def __init__(self, tol: float = 1e-8, max_iter: int = 2000) -> None:
        self.tol = tol
        self.max_iter = max_iter

    def fit(self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> BGNBD:
        """Fit on one row per customer: repeat purchases ``x``, time of the last one ``t_x``, age ``T``."""
        validate_params(self)
        x, t_x, T_ = _arrays(frequency, recency, T)
        _check_rfm(x, t_x, T_)
        if not np.any(x > 0):
            raise ConvergenceError(
                "The BG/NBD fit cannot converge: no customer bought twice, so drop-out (a, b) is not identified."
            )
        (gx, gt, gT), w = _group(x, t_x, T_)
        total = w.sum()

        def nll(theta: np.ndarray) -> float:
            return float(-(w * bgnbd_log_likelihood(np.exp(theta), gx, gt, gT)).sum() / total)

        # a start from the data: rate ~ x / T scaled, and a few spread-out guesses
        # customers first seen at the very end (T = 0) say nothing about their rate
        rate = max(float((x[T_ > 0] / T_[T_ > 0]).mean()) if np.any(T_ > 0) else 1.0, 1e-6)
        starts = [np.log([1.0, 1.0 / rate, 1.0, 1.0]), np.zeros(4), np.log([0.5, 5.0, 0.5, 5.0])]
        common = False
        try:
            params, fun, nit = _fit(
                nll,
                starts,
                ("r", "alpha", "a", "b"),
                "BG/NBD",
                self.tol,
                self.max_iter,
                hint="e.g. almost no repeat customers, or no sign of customers dropping out",
                remedy="Use more customers or a longer observation period.",
                explain=_bgnbd_ridge,
            )
        except _Ridge as ridge:
            # the supremum lies at a, b -> inf: fit that limit (r, alpha and the common p)
            r0, alpha0, a0, b0 = ridge.params
            if not (a0 > 20 and b0 > 20):  # drop-out going to 0 has no such limit to fit
                raise

            def nll_common(theta: np.ndarray) -> float:
                r, alpha, odds = np.exp(theta)
                ll = bgnbd_common_dropout_log_likelihood(np.array([r, alpha, odds / (1 + odds)]), gx, gt, gT)
                return float(-(w * ll).sum() / total)

            fitted, fun, nit = _fit(
                nll_common,
                [np.log([r0, alpha0, a0 / b0]), np.log([1.0, 1.0 / rate, 0.25])],
                ("r", "alpha", "p / (1 - p)"),
                "BG/NBD (one drop-out probability)",
                self.tol,
                self.max_iter,
                hint="e.g. almost no repeat customers, or no sign of customers dropping out",
                remedy="Use more customers or a longer observation period.",
            )
            params = np.array([fitted[0], fitted[1], np.inf, np.inf])
            p_common = float(fitted[2] / (1 + fitted[2]))
            common = True
        self.r_, self.alpha_, self.a_, self.b_ = (float(p) for p in params)
        self.common_dropout_ = common
        self.p_ = p_common if common else self.a_ / (self.a_ + self.b_)
        self.log_likelihood_ = -fun * total
        self.n_customers_ = int(x.size)
        self.n_iter_ = nit
        return self

    def _params(self) -> tuple[float, float, float, float]:
        if not hasattr(self, "r_"):
            raise NotFittedError("This BGNBD is not fitted yet: call fit(frequency, recency, T) first.")
        return self.r_, self.alpha_, self.a_, self.b_

    @property
    def params_(self) -> dict[str, float | None]:
        """``{"r", "alpha", "a", "b", "p"}``; ``a`` and ``b`` are None for one common drop-out probability."""
        r, alpha, a, b = self._params()
        if self.common_dropout_:
            return {"r": r, "alpha": alpha, "a": None, "b": None, "p": self.p_}
        return {"r": r, "alpha": alpha, "a": a, "b": b, "p": self.p_}

    def expected_purchases_new(self, t: ArrayLike) -> np.ndarray:
        r"""Expected purchases of a new customer in ``(0, t]``.

        .. math:: E[X(t)] = \frac{a+b-1}{a-1}\Big[1 - \big(\tfrac{\alpha}{\alpha+t}\big)^r
                  {}_2F_1\big(r, b; a+b-1; \tfrac{t}{\alpha+t}\big)\Big]   \quad\text{(FHL 2005, eq. 9)}
        """
        r, alpha, a, b = self._params()
        t = np.asarray(t, dtype=float)
        if self.common_dropout_:  # the limit a, b -> inf: (1 / p) [1 - (alpha / (alpha + p t))^r]
            p = self.p_
            return np.asarray((1 - (alpha / (alpha + p * t)) ** r) / p)
        return np.asarray(
            (a + b - 1)
            / (a - 1)
            * (1 - (alpha / (alpha + t)) ** r * special.hyp2f1(r, b, a + b - 1, t / (alpha + t)))
        )

    def probability_alive(self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> np.ndarray:
        r"""P(still a customer | x, t_x, T) :math:`= 1 / (1 + \delta_{x>0} \frac{a}{b+x-1} (\frac{\alpha+T}{\alpha+t_x})^{r+x})`."""
        r, alpha, a, b = self._params()
        x, t_x, T_ = _arrays(frequency, recency, T)
        # a / (b + x - 1) tends to p / (1 - p) as a, b -> inf
        ratio = self.p_ / (1 - self.p_) if self.common_dropout_ else a / np.maximum(b + x - 1, 1e-300)
        with np.errstate(divide="ignore"):
            odds = np.where(x > 0, ratio * ((alpha + T_) / (alpha + t_x)) ** (r + x), 0.0)
        return np.asarray(1 / (1 + odds))

    def expected_purchases(
        self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> np.ndarray:
        r"""Expected purchases in the next ``t`` periods given a customer's history (FHL 2005, eq. 10).

        .. math::

            E[Y(t) \mid x, t_x, T] = \frac{\frac{a+b+x-1}{a-1}\Big[1 - \big(\frac{\alpha+T}{\alpha+T+t}\big)^{r+x}
            {}_2F_1\big(r+x, b+x; a+b+x-1; \frac{t}{\alpha+T+t}\big)\Big]}
            {1 + \delta_{x>0}\frac{a}{b+x-1}\big(\frac{\alpha+T}{\alpha+t_x}\big)^{r+x}}
        """
        r, alpha, a, b = self._params()
        x, t_x, T_ = _arrays(frequency, recency, T)
        t = np.asarray(t, dtype=float)
        if self.common_dropout_:
            # the limit a, b -> inf: head -> 1 / p, 2F1(r+x, b+x; a+b+x-1; z) -> (1 - (1 - p) z)^-(r+x)
            p = self.p_
            head = np.full_like(x, 1 / p)
            body = 1 - ((alpha + T_) / (alpha + T_ + p * t)) ** (r + x)
        else:
            head = (a + b + x - 1) / (a - 1)
            z = t / (alpha + T_ + t)
            body = 1 - ((alpha + T_) / (alpha + T_ + t)) ** (r + x) * special.hyp2f1(
                r + x, b + x, a + b + x - 1, z
            )
        out = head * body * self.probability_alive(x, t_x, T_)
        if not np.all(np.isfinite(out)):
            raise ConvergenceError(
                "Expected purchases are not finite for some customers (the hypergeometric series did not "
                "converge): use a shorter horizon or a larger time unit."
            )
        return np.asarray(out)


class GammaGamma:
    """The Gamma-Gamma model of spend per transaction, fitted on repeat customers by maximum likelihood.

    Attributes
    ----------
    p_, q_, v_ : float
        Spend per transaction ~ Gamma(p, nu), nu ~ Gamma(q, v).
    n_customers_ : int
        Customers used (those with at least one repeat purchase and a positive mean spend).

    References
    ----------
    Fader, Hardie & Lee (2005), "RFM and CLV: using iso-value curves for customer base analysis",
    *J. Marketing Research* 42(4), 415-430; Fader & Hardie (2013), "The Gamma-Gamma model of
    monetary value" (note), which reports p = 6.25, q = 3.74, v = 15.44 on CDNOW.
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = BGNBD._parameter_constraints

    def __init__(self, tol: float = 1e-8, max_iter: int = 2000) -> None:
        self.tol = tol
        self.max_iter = max_iter

    def fit(self, frequency: ArrayLike, monetary_value: ArrayLike) -> GammaGamma:
        """Fit on customers with ``frequency > 0`` (others are ignored: they have no repeat spend)."""
        validate_params(self)
        x, m = _arrays(frequency, monetary_value)
        if x.size != m.size:
            raise DataError(
                f"frequency and monetary_value must have the same length. Got {x.size} and {m.size}."
            )
        keep = (x > 0) & np.isfinite(m)
        if np.any(keep & (m <= 0)):
            n = int((keep & (m <= 0)).sum())
            raise DataError(
                f"{n:,} repeat customers have a mean spend <= 0; the Gamma-Gamma model needs positive spend. "
                "Drop refunds or free orders from the transactions first."
            )
        x, m = x[keep], m[keep]
        if x.size < 3:
            raise ConvergenceError(
                f"The Gamma-Gamma fit needs repeat customers with spend; only {x.size} were found."
            )
        if np.ptp(m) == 0:
            raise ConvergenceError(
                "The Gamma-Gamma fit cannot converge: every repeat customer spends the same."
            )
        (gx, gm), w = _group(x, m)
        total = w.sum()

        def nll(theta: np.ndarray) -> float:
            return float(-(w * gamma_gamma_log_likelihood(np.exp(theta), gx, gm)).sum() / total)

        mean = float(m.mean())
        starts = [np.log([1.0, 2.0, mean]), np.zeros(3), np.log([5.0, 5.0, mean * 4])]
        params, fun, nit = _fit(
            nll,
            starts,
            ("p", "q", "v"),
            "Gamma-Gamma",
            self.tol,
            self.max_iter,
            hint="too few repeat customers, or spend that hardly varies between customers",
            remedy="Use more repeat customers, or skip the spend model (BG/NBD alone still predicts purchases).",
        )
        self.p_, self.q_, self.v_ = (float(v) for v in params)
        if self.q_ <= 1:
            raise ConvergenceError(
                f"The Gamma-Gamma fit gives q = {self.q_:.3g} <= 1, so the expected spend is infinite "
                "(a very heavy tail of big spenders). Remove outlier orders or cap the order value."
            )
        self.log_likelihood_ = -fun * total
        self.n_customers_ = int(x.size)
        self.n_iter_ = nit
        return self

    @property
    def params_(self) -> dict[str, float]:
        """``{"p", "q", "v"}``."""
        if not hasattr(self, "p_"):
            raise NotFittedError(
                "This GammaGamma is not fitted yet: call fit(frequency, monetary_value) first."
            )
        return {"p": self.p_, "q": self.q_, "v": self.v_}

    def expected_spend(self, frequency: ArrayLike, monetary_value: ArrayLike) -> np.ndarray:
        r"""Expected spend per transaction given x transactions with mean m (FHL 2005b, eq. 5).

        .. math:: E[Z \mid x, \bar z] = \frac{p\,(v + x\bar z)}{p x + q - 1}

        A customer without repeat purchases gets the population mean :math:`p v / (q - 1)`.
        """
        params = self.params_
        p, q, v = params["p"], params["q"], params["v"]
        x, m = _arrays(frequency, monetary_value)
        m = np.where(x > 0, np.nan_to_num(m), 0.0)
        return np.asarray(p * (v + x * m) / (p * x + q - 1))


def frame_or_series(values: np.ndarray, index: pd.Index | None) -> pd.Series:
    """Wrap model output back onto the caller's index."""
    return pd.Series(values, index=index)

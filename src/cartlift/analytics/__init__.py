"""Analytics: funnels, cart abandonment, customer segments (RFM, clusters), price sensitivity and CLV.

Everything heavy is SQL in the store's DuckDB; the statistics work on the counts it returns.
"""

from cartlift.analytics._abandonment import (
    AbandonmentResult,
    CartAbandonment,
    FeatureEffect,
    LevelRate,
    abandoned_carts,
)
from cartlift.analytics._clusters import FEATURE_WORDS, METHODS, STABLE, CustomerClusters, customer_features
from cartlift.analytics._clv import (
    CLVResult,
    clv_from_summary,
    read_transactions,
    summary_from_store,
    summary_from_transactions,
)
from cartlift.analytics._clv_models import BGNBD, GammaGamma
from cartlift.analytics._definitions import (
    CART_DEFINITIONS,
    METRIC_LABELS,
    ORDER_KEY_SQL,
    StoreMetrics,
    format_money,
    session_carts_sql,
    store_metrics,
    store_summary,
)
from cartlift.analytics._funnel import DEFAULT_STEPS, DERIVED_BREAKDOWNS, Funnel, funnel
from cartlift.analytics._funnel_result import (
    Breakdown,
    BreakdownGroup,
    FunnelResult,
    FunnelStep,
    HistogramBin,
    TimeToConvert,
    TrendPoint,
)
from cartlift.analytics._price import price_sensitivity
from cartlift.analytics._rfm import SEGMENTS, RFMResult, rfm, rfm_from_orders
from cartlift.analytics._segments import SegmentsResult, segments
from cartlift.analytics._stats import ChiSquare, chi_square, cliffs_delta, cramers_v, holm, wilson_interval
from cartlift.analytics._steps import (
    Exclusion,
    Step,
    parse_duration,
    parse_exclusion,
    parse_step,
    parse_steps,
)

__all__ = [
    "BGNBD",
    "CART_DEFINITIONS",
    "DEFAULT_STEPS",
    "DERIVED_BREAKDOWNS",
    "FEATURE_WORDS",
    "METHODS",
    "METRIC_LABELS",
    "ORDER_KEY_SQL",
    "SEGMENTS",
    "STABLE",
    "AbandonmentResult",
    "Breakdown",
    "BreakdownGroup",
    "CLVResult",
    "CartAbandonment",
    "ChiSquare",
    "CustomerClusters",
    "Exclusion",
    "FeatureEffect",
    "Funnel",
    "FunnelResult",
    "FunnelStep",
    "GammaGamma",
    "HistogramBin",
    "LevelRate",
    "RFMResult",
    "SegmentsResult",
    "Step",
    "StoreMetrics",
    "TimeToConvert",
    "TrendPoint",
    "abandoned_carts",
    "chi_square",
    "cliffs_delta",
    "clv_from_summary",
    "cramers_v",
    "customer_features",
    "format_money",
    "funnel",
    "holm",
    "parse_duration",
    "parse_exclusion",
    "parse_step",
    "parse_steps",
    "price_sensitivity",
    "read_transactions",
    "rfm",
    "rfm_from_orders",
    "segments",
    "session_carts_sql",
    "store_metrics",
    "store_summary",
    "summary_from_store",
    "summary_from_transactions",
    "wilson_interval",
]

"""Next best action for profit: who gets a reminder, a coupon (and which), or nothing.

- Actions and rules: `ActionCatalog` (costs, channels, discounts), `Rules` (consent, quiet hours,
  frequency caps, coupon budget per day, coupon minimum, one coupon per cart, unique expiring
  coupon codes) and the `Ledger` that enforces them decision by decision.
- Uplift models for several treatments at once: `SLearner`, `TLearner`, `XLearner` on LightGBM,
  with `qini_auc_score`, `auuc_score`, `uplift_at_k` and the curves.
- `DefaultPolicy`: what a fresh store decides with (randomised hand-set rules, exact propensities);
  `decide_with_holdout` decides a batch of carts with the global holdout first
  until `handover_status` says the log can train the profit policy.
- `ProfitPolicy`: the allowed action with the highest ``P(buy | a) (margin - discount_a) - cost_a``,
  each decision with its reason and propensity.
- Bandits that keep learning: `BetaBernoulliTS`, `LinearTS`, `LogisticTS`, `LinUCB`, `EpsilonGreedy`.
- The decision log (``decisions``) with outcomes joined from later events (``decision_outcomes``).
- Attribution (`attribute`): each order linked to the messages clicked or sent before it, within
  click-through and view-through windows, and credited to one, so decisions carry revenue and profit.
- Off-policy evaluation: replay, DM, IPS, SNIPS, DR, SNDR with bootstrap intervals.
- The global holdout (`Holdout`, `set_holdout`, `is_held_out`: a share of carts never messaged)
  and `impact`: the program's incremental conversion, revenue and profit against it, with intervals.
- `run_simulation`: every policy against a simulated store's true reactions, with the oracle as
  the ceiling.
"""

from cartlift.act._actions import CHANNELS, DEFAULT_ACTIONS, KINDS, Action, ActionCatalog
from cartlift.act._attribution import (
    AttributionWindows,
    attribute,
    attribution_links_sql,
    attribution_summary,
    parse_window,
)
from cartlift.act._bandits import Bandit, BetaBernoulliTS, EpsilonGreedy
from cartlift.act._context import CONTEXT_FEATURES, cart_contexts, cart_lines
from cartlift.act._decide import decide_in_order, decide_record
from cartlift.act._default import (
    DEFAULT_POLICY,
    DEFAULT_WEIGHTS,
    HANDOVER_MIN_DECISIONS,
    HANDOVER_MIN_PURCHASES,
    DefaultPolicy,
    decide_with_holdout,
)
from cartlift.act._demo import public_result, run_demo
from cartlift.act._holdout import (
    DEFAULT_HOLDOUT_SHARE,
    Holdout,
    current_holdout,
    holdout_phases,
    is_held_out,
    set_holdout,
)
from cartlift.act._impact import impact, impact_from_frame
from cartlift.act._linear_bandits import LinearTS, LinUCB, LogisticTS
from cartlift.act._log import (
    DECISION_COLUMNS,
    contexts_from_log,
    create_decision_tables,
    decision_outcomes,
    log_decisions,
)
from cartlift.act._obd import (
    PUBLISHED_RELATIVE_ERRORS,
    ZOZOTOWN_PRIOR_ALL,
    bernoulli_ts_action_dist,
    load_open_bandit,
    reproduce_obd_benchmark,
)
from cartlift.act._online import run_bandit
from cartlift.act._ope import (
    ESTIMATORS,
    BanditLog,
    check_log,
    estimate_interval,
    estimate_policy_value,
    evaluate_policy,
)
from cartlift.act._ope_log import ope_from_log
from cartlift.act._policy import FixedPolicy, ProfitPolicy
from cartlift.act._reward_model import fit_reward_model
from cartlift.act._rules import Ledger, Rules
from cartlift.act._simulation import BASELINES, POLICIES, run_simulation, score_decisions
from cartlift.act._uplift import SLearner, TLearner, UpliftModel, XLearner, uplift_model_from_dict
from cartlift.act._uplift_metrics import (
    auuc_score,
    evaluate_uplift,
    perfect_qini_curve,
    perfect_uplift_curve,
    qini_auc_score,
    qini_curve,
    true_qini_score,
    uplift_at_k,
    uplift_auc_score,
    uplift_curve,
)
from cartlift.act._workflows import (
    MODEL_COLUMNS,
    MODEL_TABLE,
    decide_cart,
    handover_status,
    load_policy,
    read_table,
    save_policy,
    train_from_log,
    uplift_from_table,
)

__all__ = [
    "BASELINES",
    "CHANNELS",
    "CONTEXT_FEATURES",
    "DECISION_COLUMNS",
    "DEFAULT_ACTIONS",
    "DEFAULT_HOLDOUT_SHARE",
    "DEFAULT_POLICY",
    "DEFAULT_WEIGHTS",
    "ESTIMATORS",
    "HANDOVER_MIN_DECISIONS",
    "HANDOVER_MIN_PURCHASES",
    "KINDS",
    "MODEL_COLUMNS",
    "MODEL_TABLE",
    "POLICIES",
    "PUBLISHED_RELATIVE_ERRORS",
    "ZOZOTOWN_PRIOR_ALL",
    "Action",
    "ActionCatalog",
    "AttributionWindows",
    "Bandit",
    "BanditLog",
    "BetaBernoulliTS",
    "DefaultPolicy",
    "EpsilonGreedy",
    "FixedPolicy",
    "Holdout",
    "Ledger",
    "LinUCB",
    "LinearTS",
    "LogisticTS",
    "ProfitPolicy",
    "Rules",
    "SLearner",
    "TLearner",
    "UpliftModel",
    "XLearner",
    "attribute",
    "attribution_links_sql",
    "attribution_summary",
    "auuc_score",
    "bernoulli_ts_action_dist",
    "cart_contexts",
    "cart_lines",
    "check_log",
    "contexts_from_log",
    "create_decision_tables",
    "current_holdout",
    "decide_cart",
    "decide_in_order",
    "decide_record",
    "decide_with_holdout",
    "decision_outcomes",
    "estimate_interval",
    "estimate_policy_value",
    "evaluate_policy",
    "evaluate_uplift",
    "fit_reward_model",
    "handover_status",
    "holdout_phases",
    "impact",
    "impact_from_frame",
    "is_held_out",
    "load_open_bandit",
    "load_policy",
    "log_decisions",
    "ope_from_log",
    "parse_window",
    "perfect_qini_curve",
    "perfect_uplift_curve",
    "public_result",
    "qini_auc_score",
    "qini_curve",
    "read_table",
    "reproduce_obd_benchmark",
    "run_bandit",
    "run_demo",
    "run_simulation",
    "save_policy",
    "score_decisions",
    "set_holdout",
    "train_from_log",
    "true_qini_score",
    "uplift_at_k",
    "uplift_auc_score",
    "uplift_curve",
    "uplift_from_table",
    "uplift_model_from_dict",
]

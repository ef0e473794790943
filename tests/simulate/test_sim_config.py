"""Bad knobs are refused with one clear message naming the knob and the value received."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest

from cartlift.errors import InvalidParameterError
from cartlift.simulate import DEFAULT_CATEGORIES, SimulationConfig, simulate

BAD_PHONES = replace(DEFAULT_CATEGORIES[0], price_low=500.0, price_high=100.0)
BAD_COMPLEMENT = replace(DEFAULT_CATEGORIES[0], complements=("garden",))


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"n_users": 0}, r"'n_users' parameter of SimulationConfig must be an int >= 1\. Got 0 instead"),
        ({"n_users": 2.5}, r"'n_users' .* Got 2\.5 instead"),
        ({"n_days": 0}, r"'n_days' .* Got 0 instead"),
        ({"n_products": 5}, r"'n_products' .* at least the number of categories \(12\)\. Got 5 instead"),
        ({"cart_abandonment_rate": 1.0}, r"'cart_abandonment_rate' .* Got 1\.0 instead"),
        (
            {"conversion_rate": 0.4},
            r"'conversion_rate' .* below 1 - cart_abandonment_rate = 0\.3 .*Got 0\.4 instead",
        ),
        ({"checkout_completion": 0.0}, r"'checkout_completion' .* Got 0\.0 instead"),
        ({"views_per_session": 0.5}, r"'views_per_session' .* Got 0\.5 instead"),
        ({"response_mix": {"persuadable": 1.0}}, r"'response_mix' .* summing to 1\. Got"),
        (
            {"response_mix": {"persuadable": 0.5, "sure_thing": 0.5, "lost_cause": 0.5, "sleeping_dog": 0.0}},
            r"'response_mix'",
        ),
        ({"device_mix": {"mobile": 1.0, "desktop": 0.0, "fax": 0.0}}, r"'device_mix'"),
        ({"start": datetime(2026, 1, 1)}, r"'start' .* a timezone-aware datetime\. Got"),
        ({"categories": ()}, r"'categories'"),
        ({"categories": (BAD_PHONES, *DEFAULT_CATEGORIES[1:])}, r"'categories' .* price_low < price_high"),
        ({"categories": (BAD_COMPLEMENT, *DEFAULT_CATEGORIES[1:])}, r"'categories' .* known complements"),
        ({"taste_top_k": 0}, r"'taste_top_k'"),
        ({"outcome_window_days": 0.1}, r"'outcome_window_days' .* Got 0\.1 instead"),
    ],
)
def test_bad_knobs_are_refused_with_the_knob_and_value(overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        simulate(random_state=0, **overrides)


def test_unknown_knob_lists_the_known_ones() -> None:
    with pytest.raises(
        InvalidParameterError, match=r"Unknown simulation parameter\(s\) n_user\. Known: .*n_users"
    ):
        simulate(n_user=10)


def test_config_must_be_a_simulation_config() -> None:
    with pytest.raises(InvalidParameterError, match=r"config must be a SimulationConfig or None\. Got dict"):
        simulate({"n_users": 10})  # type: ignore[arg-type]


def test_config_json_round_trips_its_knobs() -> None:
    import json

    cfg = SimulationConfig(n_users=12, n_days=3)
    data = json.loads(cfg.to_json())
    assert data["n_users"] == 12
    assert data["n_days"] == 3
    assert data["start"] == "2026-01-01T00:00:00+00:00"
    assert len(data["categories"]) == len(DEFAULT_CATEGORIES)

"""One router per resource: admin, carts, dashboard, events, experiments, ops, recommendations."""

__all__: list[str] = []

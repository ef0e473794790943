"""One router per resource: admin, audiences, carts, dashboard, events, experiments, ops, recommendations."""

__all__: list[str] = []

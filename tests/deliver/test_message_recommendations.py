"""The products an e-mail suggests come from the recommender the service serves (its registry's
newest version), never from the cart itself; with none trained, from the best sellers, saying so;
and every sent e-mail's suggestions are logged as a list shown (``rec_impressions``)."""

from __future__ import annotations

from email import message_from_bytes
from email.message import Message
from pathlib import Path

import pandas as pd
from _deliver_helpers import settings

from cartlift.deliver import Worker, open_db
from cartlift.deliver._facts import gather
from cartlift.deliver._render import render_message
from cartlift.deliver._repo import cart_message
from cartlift.recommend import served_recommender
from cartlift.serve import ModelRegistry, train_all
from cartlift.store import EventStore


def _send(shop: Path, models: Path | None) -> dict[str, str]:
    """Send every due e-mail of the shop as files; each one's plain text by cart."""
    out = shop.parent / "outbox"
    with open_db(shop) as db:
        worker = Worker(db, settings(), outbox_dir=out, models=models)
        try:
            assert worker.run_once().sent == 6
        finally:
            worker.close()
    texts = {}
    for file in out.glob("*.eml"):
        mail: Message = message_from_bytes(file.read_bytes())
        plain = next(p for p in mail.walk() if p.get_content_type() == "text/plain")
        texts[str(mail["To"]).split("@")[0].replace("u", "s")] = plain.get_payload(decode=True).decode()
    return texts


def _logged(shop: Path) -> pd.DataFrame:
    with EventStore(shop, read_only=True) as store:
        return store.query(
            "SELECT i.*, m.cart_id FROM rec_impressions i JOIN messages m ON m.message_id = i.message_id"
        )


def test_messages_suggest_the_served_recommenders_products(shop: Path, tmp_path: Path) -> None:
    registry = tmp_path / "models"
    with EventStore(shop) as store:
        trained = train_all(store, ModelRegistry(registry))
        carts = store.query(
            "SELECT session_id, list(product_id ORDER BY ts) AS items FROM events "
            "WHERE event_type = 'cart_add' GROUP BY session_id"
        )
    assert trained["recommender"]["version"] == "v0001"
    served = served_recommender(registry)
    assert served is not None and served.name == trained["recommender"]["name"]
    # what the model answers for each cart, as the message must show it (the catalog holds p0..p4)
    lists = served.model.recommend_for_items([list(i) for i in carts["items"]], 6).to_lists()
    expected = {
        cart: [p for p in ids if p not in set(items) and p in {f"p{k}" for k in range(5)}][:3]
        for cart, items, ids in zip(carts["session_id"], carts["items"], lists, strict=True)
    }
    assert any(expected.values()) and any(v != ["p1"] for v in expected.values())  # not the best seller
    texts = _send(shop, registry)
    logged = _logged(shop)
    for cart, ids in expected.items():
        rows = logged[logged["cart_id"] == cart].sort_values("position")
        if not ids:  # the model knows none of this cart's products: the best sellers instead
            assert set(rows["source"]) <= {"best-sellers"}
            continue
        assert rows["product_id"].tolist() == ids, cart
        assert set(rows["source"]) == {"recommender"} and set(rows["model_version"]) == {"v0001"}
        assert set(rows["model"]) == {served.name} and set(rows["context"]) == {"message"}
        assert (rows["session_id"] == cart).all() and (rows["ts"].notna()).all()
        for pid in ids:
            assert f"Product <{pid[1:]}> & more" in texts[cart]
    # the preview says where the suggestions came from
    with open_db(shop) as db:
        msg = cart_message(db, cart_id="s0")
        assert msg is not None
        facts = gather(db, [msg], now=msg["due_at"], recommender=served)
        assert facts.recommender == {"model": served.name, "version": "v0001"}
        assert render_message(db, msg, settings=settings(), facts=facts).recommended


def test_without_a_trained_recommender_messages_suggest_best_sellers(shop: Path, tmp_path: Path) -> None:
    _send(shop, tmp_path / "no-models")  # a registry folder with nothing published yet
    logged = _logged(shop)
    # the one best seller (p1) where it is not already in the cart: s0, s1 and s5 hold it
    assert sorted(logged["cart_id"]) == ["s2", "s3", "s4"]
    assert set(logged["product_id"]) == {"p1"} and set(logged["source"]) == {"best-sellers"}
    assert logged["model"].isna().all() and logged["model_version"].isna().all()
    with open_db(shop) as db:
        msg = cart_message(db, cart_id="s3")
        assert msg is not None
        facts = gather(db, [msg], now=msg["due_at"])
        rendered = render_message(db, msg, settings=settings(), facts=facts)
    assert facts.recommender is None and rendered.recommended == (("p1", "best-sellers"),)

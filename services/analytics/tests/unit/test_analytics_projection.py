"""A batch folded at once writes what its events folded one at a time would have written.

The reference here is a small stand-in for MongoDB's update operators, written for the test (not
the service's code): each event alone is read, folded and written the way `record_events` does,
then the same events as one batch; the stored rows and the promotions granted must be the same.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from analytics_service.projection import (
    Changes,
    Snapshot,
    fold_batch,
    new_events,
    order_ids_of,
    stock_product_ids_of,
    user_ids_of,
)

from contracts import SYSTEM, Actor, Envelope, Event
from contracts.inventory import ProductCreated, StockAdjusted, StockLow, StockPartiallyReserved
from contracts.order import OrderConfirmed, OrderPlaced, OrderRejected, PromotionRedeemed
from contracts.payment import PaymentAuthorized, PaymentFailed
from contracts.registry import all_events
from contracts.testing import sample
from contracts.types import Line, MissingLine, PricedLine
from contracts.user import UserLoggedIn, UserProfileUpdated, UserRegistered, UserRoleChanged

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


def at(event: Event, seconds: float, correlation: str = "c") -> Envelope[Event]:
    envelope = Envelope.wrap(event, correlation_id=correlation, actor=SYSTEM)
    return envelope.model_copy(update={"occurred_at": T0 + timedelta(seconds=seconds)})


# -- a stand-in for the store -----------------------------------------------------------------


def _stored(value: Any) -> Any:
    """As MongoDB keeps it: datetimes to the millisecond."""
    if isinstance(value, datetime):
        return value.replace(microsecond=value.microsecond // 1000 * 1000)
    if isinstance(value, dict):
        return {k: _stored(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stored(v) for v in value]
    return value


def _update(doc: dict[str, Any] | None, key: str, update: dict[str, Any]) -> dict[str, Any]:
    """An upsert with `$set`, `$min`, `$max` and `$addToSet` (`$each` or one value)."""
    out = copy.deepcopy(doc) if doc else {"_id": key}
    for name, value in update.get("$set", {}).items():
        out[name] = _stored(value)
    for name, value in update.get("$min", {}).items():
        if name not in out or _stored(value) < out[name]:
            out[name] = _stored(value)
    for name, value in update.get("$max", {}).items():
        if name not in out or _stored(value) > out[name]:
            out[name] = _stored(value)
    for name, spec in update.get("$addToSet", {}).items():
        values = spec["$each"] if isinstance(spec, dict) and "$each" in spec else [spec]
        present = out.setdefault(name, [])
        present.extend(v for v in values if v not in present)
    unknown = set(update) - {"$set", "$min", "$max", "$addToSet"}
    assert not unknown, unknown
    return out


@dataclass
class Store:
    """The projection collections and the grants emitted, as `record_events` would leave them."""

    rows: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: (
            {c: {} for c in ("order_facts", "user_facts", "products")} | {"promotions": {}}
        )
    )
    events: list[str] = field(default_factory=list)
    grants: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def snapshot(self, fresh: Sequence[Envelope[Event]]) -> Snapshot:
        """What `record_events` reads for these events."""
        facts = self._by_ids("order_facts", order_ids_of(fresh))
        users = user_ids_of(fresh, facts)
        return Snapshot(
            order_facts=facts,
            user_facts=self._by_ids("user_facts", users),
            products=self._by_ids("products", stock_product_ids_of(fresh)),
            users_read=frozenset(users),
        )

    def _by_ids(self, collection: str, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        rows = self.rows[collection]
        return {i: copy.deepcopy(rows[i]) for i in ids if i in rows}

    def record(self, envelopes: Sequence[Envelope[Event]]) -> None:
        """One batch, as `record_events` handles it."""
        fresh = new_events(envelopes, self.events)
        self.events += [e.id for e in fresh]
        self.apply(fold_batch(fresh, self.snapshot(fresh)))

    def apply(self, changes: Changes) -> None:
        for key, fact in changes.order_facts.items():
            self.rows["order_facts"][key] = _stored(copy.deepcopy(fact))
        for collection, updates in (
            ("user_facts", changes.user_facts),
            ("products", changes.products),
            ("promotions", changes.promotions),
        ):
            rows = self.rows[collection]
            for key, update in updates.items():
                rows[key] = _update(rows.get(key), key, update.as_mongo())
        self.grants += [(cause.id, event.model_dump()) for cause, event in changes.grants]


def one_at_a_time(envelopes: Sequence[Envelope[Event]], store: Store | None = None) -> Store:
    store = store or Store()
    for envelope in envelopes:
        store.record([envelope])
    return store


def in_batches(
    envelopes: Sequence[Envelope[Event]], size: int, store: Store | None = None
) -> Store:
    store = store or Store()
    for start in range(0, len(envelopes), size):
        store.record(envelopes[start : start + size])
    return store


# -- the events ---------------------------------------------------------------------------------


def lines(*spec: tuple[str, int]) -> tuple[PricedLine, ...]:
    return tuple(PricedLine(product_id=p, quantity=q, price_cents=500) for p, q in spec)


def placed(order_id: str, user_id: str, t: float, *spec: tuple[str, int]) -> Envelope[Event]:
    items = lines(*spec)
    event = OrderPlaced(
        order_id=order_id,
        user_id=user_id,
        items=items,
        total_cents=sum(i.quantity * i.price_cents for i in items),
        address_id="a",
        payment_method_id="pm",
    )
    return at(event, t, order_id)


def confirmed(order_id: str, user_id: str, t: float, *spec: tuple[str, int]) -> Envelope[Event]:
    items = lines(*spec)
    event = OrderConfirmed(
        order_id=order_id,
        user_id=user_id,
        items=items,
        total_cents=sum(i.quantity * i.price_cents for i in items),
        payment_method_id="pm",
    )
    return at(event, t, order_id)


def journey() -> list[Envelope[Event]]:
    """A catalogue, three users, orders up to and past a loyalty grant, stock news out of order,
    a redemption, a failure, a rejection and every other event type once."""
    out: list[Envelope[Event]] = [
        at(ProductCreated(product_id=p, name=p, category="c", price_cents=500), 0, p)
        for p in ("p1", "p2")
    ]
    for n, user in enumerate(("u1", "u2", "u3")):
        registered = UserRegistered(user_id=user, username=user, email=f"{user}@x.io")
        out.append(at(registered, 1 + n, user))
    out.append(
        at(UserProfileUpdated(user_id="u1", username="u1", email="u", is_profile_complete=True), 4)
    )
    out.append(at(UserLoggedIn(user_id="u2"), 5))
    out.append(at(UserRoleChanged(user_id="u3", role="Manager"), 6))
    for n in range(4):  # u1: the 3rd confirmation earns the grant, the 4th does not again
        order_id = f"o{n}"
        out += [
            placed(order_id, "u1", 10 + n, ("p1", 1)),
            at(
                PaymentAuthorized(
                    order_id=order_id,
                    user_id="u1",
                    payment_id=f"pay{n}",
                    amount_cents=500,
                    attempts=1,
                ),
                10.2 + n,
                order_id,
            ),
            confirmed(order_id, "u1", 10.5 + n, ("p1", 1)),
        ]
    # u2: a partial reservation (p2 sold out), then a failed payment, then a rejection.
    out += [
        placed("o9", "u2", 20, ("p1", 1), ("p2", 2)),
        at(
            StockPartiallyReserved(
                order_id="o9",
                user_id="u2",
                reserved=(Line(product_id="p1", quantity=1),),
                missing=(MissingLine(product_id="p2", requested=2, available=1),),
                expires_at=T0 + timedelta(minutes=5),
            ),
            21,
            "o9",
        ),
        at(
            PaymentFailed(
                order_id="o9",
                user_id="u2",
                payment_id="pay9",
                reason="declined",
                attempts=1,
                retryable=False,
            ),
            22,
            "o9",
        ),
        at(OrderRejected(order_id="o9", user_id="u2", reason="FRAUD"), 23, "o9"),
    ]
    # Stock news out of order: the newest (p2 restocked at 30 s) must win over older ones.
    out += [
        at(StockAdjusted(product_id="p2", delta=5, reason="restock", available=5), 30, "p2"),
        at(sample(StockLow, product_id="p2", available=1, threshold=2), 25, "p2"),
        # Two in one millisecond: the later one in the batch does not win (compared in ms).
        at(sample(StockLow, product_id="p1", available=3, threshold=5), 31.0004, "p1"),
        at(sample(StockLow, product_id="p1", available=2, threshold=5), 31.0008, "p1"),
    ]
    out.append(at(PromotionRedeemed(user_id="u1", code="LOYAL3-X", order_id="o3"), 40, "o3"))
    # Every other event type, as the catalogue's samples (ids of their own).
    covered = {type(e.data) for e in out}
    out += [
        at(sample(cls), 50 + n, "s")
        for n, cls in enumerate(all_events().values())
        if cls not in covered
    ]
    return out


# -- the tests ----------------------------------------------------------------------------------


def test_new_events_keep_each_id_once_in_delivery_order_minus_the_recorded() -> None:
    a, b, c = (at(UserLoggedIn(user_id=u), 0) for u in ("a", "b", "c"))
    assert [e.id for e in new_events([b, a, b, c, a], recorded=[c.id])] == [b.id, a.id]
    assert new_events([a, a], recorded=[a.id]) == []


def test_a_batch_mixing_every_event_type_writes_what_one_at_a_time_writes() -> None:
    events = journey()
    assert {type(e.data) for e in events} == set(all_events().values())
    reference = one_at_a_time(events)
    batched = in_batches(events, len(events))
    assert batched.rows == reference.rows
    assert batched.grants == reference.grants
    # The reference itself is what the rules say (so the comparison compares something).
    facts = reference.rows["order_facts"]
    assert {facts[f"o{n}"]["status"] for n in range(4)} == {"CONFIRMED"}
    assert facts["o9"]["status"] == "REJECTED" and facts["o9"]["partial"] is True
    assert facts["o9"]["payment_failed"] is True
    u1 = reference.rows["user_facts"]["u1"]
    assert u1["confirmed_orders"] == ["o0", "o1", "o2", "o3"] and u1["granted_rules"] == ["loyal3"]
    assert u1["first_order_at"] == T0 + timedelta(seconds=10.5)
    assert u1["last_active_at"] == T0 + timedelta(seconds=13.5)
    assert reference.rows["user_facts"]["u3"]["role"] == "Manager"
    products = reference.rows["products"]
    restocked = T0 + timedelta(seconds=30)
    assert (products["p2"]["available"], products["p2"]["stock_at"]) == (5, restocked)
    assert products["p1"]["available"] == 3  # the same millisecond: the first one stays
    [(cause, grant)] = reference.grants
    assert cause == events[events.index(confirmed_event(events, "o2"))].id
    assert grant["user_id"] == "u1" and grant["percent_off"] == 10
    promotion = reference.rows["promotions"][grant["code"]]
    assert promotion["granted_at"] == T0 + timedelta(seconds=12.5)


def confirmed_event(events: Sequence[Envelope[Event]], order_id: str) -> Envelope[Event]:
    return next(
        e for e in events if isinstance(e.data, OrderConfirmed) and e.data.order_id == order_id
    )


@pytest.mark.parametrize("size", [2, 3, 7, 50])
def test_any_cut_into_batches_writes_the_same(size: int) -> None:
    events = journey()
    reference = one_at_a_time(events)
    batched = in_batches(events, size)
    assert batched.rows == reference.rows
    assert batched.grants == reference.grants


def test_the_order_of_events_within_a_batch_is_the_order_they_are_folded_in() -> None:
    """The last role wins, and which confirmation is the 3rd (the one that earns the grant)
    depends on the order: a batch follows delivery order as one at a time does."""
    roles = [at(UserRoleChanged(user_id="u1", role=r), 0) for r in ("Manager", "Admin")]
    confirmations = [confirmed(f"o{n}", "u1", n, ("p1", 1)) for n in range(3)]
    for events in (roles + confirmations, roles[::-1] + confirmations[::-1]):
        batched = in_batches(events, len(events))
        assert batched.rows == one_at_a_time(events).rows
        assert batched.grants == one_at_a_time(events).grants
        assert batched.rows["user_facts"]["u1"]["role"] == events[1].data.role  # type: ignore[attr-defined]
        assert [cause for cause, _ in batched.grants] == [events[-1].id]


def test_duplicates_inside_a_batch_and_across_batches_are_folded_once() -> None:
    events = journey()
    shuffled = random.Random(7)
    # Every event delivered twice: once in order, once more somewhere later.
    doubled = list(events)
    for envelope in events:
        doubled.insert(shuffled.randrange(doubled.index(envelope) + 1, len(doubled) + 1), envelope)
    reference = one_at_a_time(events)
    for size in (1, 5, len(doubled)):
        batched = in_batches(doubled, size)
        assert batched.events == [e.id for e in events]
        assert batched.rows == reference.rows
        assert batched.grants == reference.grants


def test_a_stored_state_is_continued_not_restarted() -> None:
    """Two confirmations stored earlier, the third in a batch: the grant comes with the third;
    a user with the grant stored already gets none."""
    earlier = [confirmed(f"o{n}", "u1", n, ("p1", 1)) for n in range(2)]
    later = [placed("o2", "u1", 5, ("p1", 1)), confirmed("o2", "u1", 6, ("p1", 1))]
    store = in_batches(earlier, 2)
    in_batches(later, 2, store)
    assert [cause for cause, _ in store.grants] == [later[1].id]
    again = [confirmed("o3", "u1", 7, ("p1", 1)), confirmed("o4", "u1", 8, ("p1", 1))]
    in_batches(again, 2, store)
    assert len(store.grants) == 1
    assert store.rows["user_facts"]["u1"]["confirmed_orders"] == ["o0", "o1", "o2", "o3", "o4"]


def test_the_reads_of_a_batch_cover_what_it_folds() -> None:
    paid = at(
        PaymentAuthorized(order_id="o1", user_id="", payment_id="p", amount_cents=1, attempts=1),
        1,
    )
    confirmation = confirmed("o1", "", 2, ("p1", 1))
    stock = at(
        StockPartiallyReserved(
            order_id="o2",
            user_id="u2",
            reserved=(),
            missing=(MissingLine(product_id="p7", requested=1, available=0),),
            expires_at=T0,
        ),
        2,
    )
    batch = [paid, confirmation, stock, at(sample(StockLow, product_id="p8"), 3)]
    assert order_ids_of(batch) == {"o1", "o2"}
    # o1 is confirmed, its user known from its stored fact only; o2's events change no user.
    facts = {"o1": {"_id": "o1", "user_id": "u1"}}
    assert user_ids_of(batch, facts) == {"u1"}
    assert stock_product_ids_of(batch) == {"p7", "p8"}
    users = Snapshot(order_facts=facts, users_read=frozenset({"u1"}))
    assert fold_batch(batch, users).user_facts["u1"].add_to == {"confirmed_orders": ["o1"]}
    with pytest.raises(KeyError):  # a user nobody read is a bug, not a new user
        fold_batch([at(UserLoggedIn(user_id="u9"), 0)], Snapshot())


def test_an_actor_is_not_a_user_to_read() -> None:
    login = Envelope.wrap(UserLoggedIn(user_id="u1"), correlation_id="c", actor=Actor(user_id="x"))
    assert user_ids_of([login], {}) == {"u1"}


def test_an_order_confirmed_by_two_events_counts_once_towards_the_grant() -> None:
    events = [
        confirmed("o0", "u1", 0, ("p1", 1)),
        confirmed("o0", "u1", 1, ("p1", 1)),  # another event for the same order
        confirmed("o1", "u1", 2, ("p1", 1)),
    ]
    batched = in_batches(events, len(events))
    assert batched.rows == one_at_a_time(events).rows
    assert batched.rows["user_facts"]["u1"]["confirmed_orders"] == ["o0", "o1"]
    assert batched.grants == []

"""A batch of events folded into the projections, in memory (pure: no I/O).

`commands.record_events` reads what a batch touches (order facts, user facts, the products whose
stock it reports) with one query per collection, folds the batch's new events into it here, in
delivery order, and writes the result back with one bulk write per collection. Folding a batch
gives what folding its events one at a time gave: each event sees the state the events before it
left, and what is written is the merged result: a replaced order fact, and per user, product and
promotion one update whose operators compose as the single updates did ($set: the last value;
$min/$max: the extreme; $addToSet: the union, in order). No field is written by two operators.

- order facts: `domain.fold_order` over each order's events;
- user facts: registration, profile completion, role, last activity, orders and confirmed
  orders; the 3rd confirmed order earns a loyalty grant (a promotion, the rule noted on the user,
  and a `PromotionGranted` to emit on behalf of the confirmation that earned it);
- products: the catalogue replica and the newest stock news;
- promotions: granted codes and their redemption.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from analytics_service.domain import ORDER_EVENTS, Grant, fold_order, loyalty_grant
from contracts import Envelope, Event
from contracts.analytics import PromotionGranted
from contracts.inventory import (
    ProductCreated,
    ProductDeleted,
    ProductUpdated,
    StockAdjusted,
    StockLow,
    StockPartiallyReserved,
    StockUnavailable,
)
from contracts.order import OrderConfirmed, OrderPlaced, PromotionRedeemed
from contracts.user import (
    UserDeleted,
    UserLoggedIn,
    UserProfileUpdated,
    UserRegistered,
    UserRoleChanged,
)
from kit.mongo import Doc


def new_events(
    envelopes: Iterable[Envelope[Event]], recorded: Iterable[str]
) -> list[Envelope[Event]]:
    """The envelopes to apply: each id once (its first delivery), none recorded already."""
    seen = set(recorded)
    out = []
    for envelope in envelopes:
        if envelope.id not in seen:
            seen.add(envelope.id)
            out.append(envelope)
    return out


# -- what a batch reads ---------------------------------------------------------------------------


def order_ids_of(envelopes: Iterable[Envelope[Event]]) -> set[str]:
    """The orders whose facts the batch folds."""
    return {getattr(e.data, "order_id") for e in envelopes if isinstance(e.data, ORDER_EVENTS)}  # noqa: B009


def user_ids_of(envelopes: Iterable[Envelope[Event]], order_facts: Mapping[str, Doc]) -> set[str]:
    """The users whose facts the batch may change: those of its user events, and the user of
    each order it places or confirms (named by any of that order's events, or by its stored
    fact: an order's user comes from its fact when the event does not say)."""
    envelopes = list(envelopes)
    user_orders = {
        e.data.order_id for e in envelopes if isinstance(e.data, OrderPlaced | OrderConfirmed)
    }
    found: set[str] = set()
    for envelope in envelopes:
        data = envelope.data
        named: Any = data  # user events name their user; order events their order and user
        if isinstance(data, USER_EVENTS):
            found.add(named.user_id)
        elif isinstance(data, ORDER_EVENTS) and named.order_id in user_orders:
            if named.user_id:
                found.add(named.user_id)
            known = order_facts.get(named.order_id, {}).get("user_id")
            if known:
                found.add(known)
    return found


def stock_product_ids_of(envelopes: Iterable[Envelope[Event]]) -> set[str]:
    """The products whose stock the batch reports (the newest news wins: their time is read)."""
    found: set[str] = set()
    for envelope in envelopes:
        match envelope.data:
            case StockLow() | StockAdjusted() as data:
                found.add(data.product_id)
            case StockUnavailable() | StockPartiallyReserved() as data:
                found.update(line.product_id for line in data.missing)
    return found


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The stored rows a batch reads, by id (an id read and not found is simply absent)."""

    order_facts: Mapping[str, Doc] = field(default_factory=dict)
    user_facts: Mapping[str, Doc] = field(default_factory=dict)
    products: Mapping[str, Doc] = field(default_factory=dict)
    # Which users were read: a user asked for outside them is a bug, not a new user.
    users_read: frozenset[str] = frozenset()


# -- what a batch writes --------------------------------------------------------------------------


@dataclass(slots=True)
class Update:
    """One document's merged update."""

    set_: Doc = field(default_factory=dict)
    min_: Doc = field(default_factory=dict)
    max_: Doc = field(default_factory=dict)
    add_to: dict[str, list[Any]] = field(default_factory=dict)

    def as_mongo(self) -> Doc:
        """The update document (`$addToSet` with `$each`, in the order the values came)."""
        update: Doc = {}
        if self.set_:
            update["$set"] = dict(self.set_)
        if self.min_:
            update["$min"] = dict(self.min_)
        if self.max_:
            update["$max"] = dict(self.max_)
        if self.add_to:
            update["$addToSet"] = {k: {"$each": list(v)} for k, v in self.add_to.items()}
        return update


@dataclass(slots=True)
class Tracked:
    """A document as the batch has left it so far, and the one update that takes it there."""

    doc: Doc
    update: Update = field(default_factory=Update)

    def change(
        self,
        *,
        set_: Mapping[str, Any] | None = None,
        set_once: Mapping[str, datetime] | None = None,
        latest: Mapping[str, datetime] | None = None,
        add_to: Mapping[str, Any] | None = None,
    ) -> Doc:
        """Apply `$set`, `$min` (`set_once`: the earliest wins), `$max` (`latest`) and
        `$addToSet`, as MongoDB would; the document after them."""
        doc, update = self.doc, self.update
        for key, value in (set_ or {}).items():
            doc[key] = update.set_[key] = value
        # (A stored null sorts before any date: `$min` keeps it, `$max` replaces it.)
        for key, value in (set_once or {}).items():
            if key not in doc or (doc[key] is not None and value < doc[key]):
                doc[key] = value
            update.min_[key] = min(update.min_.get(key, value), value)
        for key, value in (latest or {}).items():
            if key not in doc or doc[key] is None or value > doc[key]:
                doc[key] = value
            update.max_[key] = max(update.max_.get(key, value), value)
        for key, value in (add_to or {}).items():
            values = doc.setdefault(key, [])
            if value not in values:
                values.append(value)
            adding = update.add_to.setdefault(key, [])
            if value not in adding:
                adding.append(value)
        return doc


@dataclass(slots=True)
class Changes:
    """What a batch writes: order facts to replace, one update per user, product and
    promotion (all upserts), and the promotions granted (cause, event) to emit."""

    order_facts: dict[str, Doc] = field(default_factory=dict)
    user_facts: dict[str, Update] = field(default_factory=dict)
    products: dict[str, Update] = field(default_factory=dict)
    promotions: dict[str, Update] = field(default_factory=dict)
    grants: list[tuple[Envelope[Event], PromotionGranted]] = field(default_factory=list)


class _Fold:
    """The batch's state while its events are folded in."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.order_facts: dict[str, Doc] = {}
        self.users: dict[str, Tracked] = {}
        self.products: dict[str, Tracked] = {}
        self.promotions: dict[str, Tracked] = {}
        self.grants: list[tuple[Envelope[Event], PromotionGranted]] = []

    def order_fact(self, order_id: str) -> Doc | None:
        if order_id in self.order_facts:
            return self.order_facts[order_id]
        return self.snapshot.order_facts.get(order_id)

    def user(self, user_id: str) -> Tracked:
        if user_id not in self.users:
            if user_id not in self.snapshot.users_read:
                raise KeyError(f"user {user_id!r} was not read for this batch")
            stored = self.snapshot.user_facts.get(user_id)
            self.users[user_id] = Tracked(_copy(stored) if stored else {"_id": user_id})
        return self.users[user_id]

    def product(self, product_id: str) -> Tracked:
        if product_id not in self.products:
            stored = self.snapshot.products.get(product_id)
            self.products[product_id] = Tracked(_copy(stored) if stored else {"_id": product_id})
        return self.products[product_id]

    def promotion(self, code: str) -> Tracked:
        # Written with `$set` only: nothing stored needs reading.
        return self.promotions.setdefault(code, Tracked({"_id": code}))

    def changes(self) -> Changes:
        return Changes(
            order_facts=self.order_facts,
            user_facts={k: t.update for k, t in self.users.items() if t.update.as_mongo()},
            products={k: t.update for k, t in self.products.items() if t.update.as_mongo()},
            promotions={k: t.update for k, t in self.promotions.items() if t.update.as_mongo()},
            grants=self.grants,
        )


def _copy(doc: Mapping[str, Any]) -> Doc:
    # Lists are changed in place by `Tracked.change`: never those of the snapshot.
    return {k: list(v) if isinstance(v, list) else v for k, v in doc.items()}


def fold_batch(envelopes: Sequence[Envelope[Event]], snapshot: Snapshot) -> Changes:
    """Fold new events (each once, in delivery order) into the rows `snapshot` holds."""
    state = _Fold(snapshot)
    for envelope in envelopes:
        for fold in FOLDS.get(type(envelope.data), ()):
            fold(state, envelope)
    return state.changes()


# -- the projections of one event -----------------------------------------------------------------


def _track_order(state: _Fold, envelope: Envelope[Event]) -> None:
    """Fold an order event into its order fact; count confirmed orders and grant promotions."""
    data: Any = envelope.data
    fact = fold_order(state.order_fact(data.order_id), envelope)
    state.order_facts[fact["_id"]] = fact
    user_id = fact.get("user_id")
    if not user_id:
        return
    at = envelope.occurred_at
    if isinstance(data, OrderPlaced):
        state.user(user_id).change(latest={"last_active_at": at}, add_to={"orders": data.order_id})
    elif isinstance(data, OrderConfirmed):
        user = state.user(user_id)
        doc = user.change(
            add_to={"confirmed_orders": data.order_id},
            set_once={"first_order_at": at},
            latest={"last_active_at": at},
        )
        grant = loyalty_grant(
            user_id, len(doc.get("confirmed_orders", [])), doc.get("granted_rules", []), at
        )
        if grant is not None:
            _grant(state, envelope, user_id, grant, at)
            user.change(add_to={"granted_rules": grant.rule})


def _grant(state: _Fold, cause: Envelope[Event], user_id: str, grant: Grant, at: datetime) -> None:
    state.promotion(grant.code).change(
        set_={
            "user_id": user_id,
            "rule": grant.rule,
            "percent_off": grant.percent_off,
            "expires_at": grant.expires_at,
            "reason": grant.reason,
            "granted_at": at,
        }
    )
    event = PromotionGranted(
        user_id=user_id,
        code=grant.code,
        percent_off=grant.percent_off,
        expires_at=grant.expires_at,
        reason=grant.reason,
    )
    state.grants.append((cause, event))


def _track_user(state: _Fold, envelope: Envelope[Event]) -> None:
    """Keep a user's funnel facts: registration, profile completion, role, last activity."""
    at = envelope.occurred_at
    match envelope.data:
        case UserRegistered() as data:
            state.user(data.user_id).change(
                set_={"role": data.role, "region": data.region},
                set_once={"registered_at": at},
                latest={"last_active_at": at},
            )
        case UserProfileUpdated() as data:
            state.user(data.user_id).change(
                set_once={"profile_complete_at": at} if data.is_profile_complete else None,
                latest={"last_active_at": at},
            )
        case UserLoggedIn() as data:
            state.user(data.user_id).change(latest={"last_active_at": at})
        case UserRoleChanged() as data:
            state.user(data.user_id).change(set_={"role": data.role})
        case UserDeleted() as data:
            state.user(data.user_id).change(set_={"deleted": True})


def _track_product(state: _Fold, envelope: Envelope[Event]) -> None:
    """Keep the catalogue replica and each product's last known stock."""
    match envelope.data:
        case ProductCreated() | ProductUpdated() | ProductDeleted() as data:
            state.product(data.product_id).change(
                set_={
                    "name": data.name,
                    "category": data.category,
                    "price_cents": data.price_cents,
                    "deleted": isinstance(data, ProductDeleted),
                }
            )
        case StockLow() | StockAdjusted() as data:
            _stock(state, data.product_id, data.available, envelope)
        case StockUnavailable() | StockPartiallyReserved() as data:
            # A line is missing only when inventory took every unit it had (a partial take is
            # all of them): whatever `available` said before the take, none are left after it.
            for line in data.missing:
                _stock(state, line.product_id, 0, envelope)


def _stock(state: _Fold, product_id: str, available: int, envelope: Envelope[Event]) -> None:
    # The newest stock news wins, whatever order the events are handled in. Mongo keeps
    # milliseconds: the time is compared, and kept, at that precision.
    at = envelope.occurred_at
    at = at.replace(microsecond=at.microsecond // 1000 * 1000)
    product = state.product(product_id)
    seen = product.doc.get("stock_at")
    if seen is None or seen < at:
        product.change(set_={"available": available, "stock_at": at})


def _redeem_promotion(state: _Fold, envelope: Envelope[Event]) -> None:
    """Mark a promotion code used (single use)."""
    data = envelope.data
    assert isinstance(data, PromotionRedeemed)
    state.promotion(data.code).change(
        set_={"redeemed_at": envelope.occurred_at, "redeemed_order_id": data.order_id}
    )


USER_EVENTS: tuple[type[Event], ...] = (
    UserRegistered,
    UserProfileUpdated,
    UserLoggedIn,
    UserRoleChanged,
    UserDeleted,
)
PRODUCT_EVENTS: tuple[type[Event], ...] = (
    ProductCreated,
    ProductUpdated,
    ProductDeleted,
    StockLow,
    StockAdjusted,
    StockUnavailable,
    StockPartiallyReserved,
)

type FoldStep = Callable[[_Fold, Envelope[Event]], None]


def _folds() -> dict[type[Event], list[FoldStep]]:
    table: dict[type[Event], list[FoldStep]] = {PromotionRedeemed: [_redeem_promotion]}
    for classes, fold in (
        (ORDER_EVENTS, _track_order),
        (USER_EVENTS, _track_user),
        (PRODUCT_EVENTS, _track_product),
    ):
        for cls in classes:
            table.setdefault(cls, []).append(fold)
    return table


FOLDS: dict[type[Event], list[FoldStep]] = _folds()
"""What each event type feeds besides the event store (StockPartiallyReserved: two)."""

"""Pure rules of the notify service (no I/O, no framework imports).

Which event becomes which notification (`WELCOME`, `ORDER_CONFIRMED`, …) for whom, on which
channels given the user's preferences (in-app always, email by default, SMS and push when chosen),
the message texts, and the key that makes a redelivered event never send twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

from contracts import Envelope, Event
from contracts.analytics import PromotionGranted
from contracts.inventory import StockLow, StockPartiallyReserved
from contracts.order import (
    OrderApprovalRequired,
    OrderCancelled,
    OrderConfirmed,
    OrderPlaced,
    OrderRejected,
    ReturnApproved,
    ReturnRejected,
    ReturnRequested,
)
from contracts.payment import PaymentFailed, PaymentRefunded
from contracts.shipping import ShipmentDelivered, ShipmentDispatched
from contracts.types import Channel, NotificationType, UserRole
from contracts.user import UserRegistered

# Channels a user gets when they never chose any (api.md: "email is on by default").
DEFAULT_CHANNELS: tuple[Channel, ...] = ("inApp", "email")
# Channels that leave the service through a provider; in-app is delivered by being stored.
EXTERNAL_CHANNELS: tuple[Channel, ...] = ("email", "sms", "push")
NOTIFICATION_NAMESPACE = uuid.UUID("6f1c8f3e-5b7a-4c61-9a7e-2f0d3c9b8a11")

Status = Literal["pending", "sent", "failed", "skipped"]


@dataclass(frozen=True, slots=True)
class Contact:
    """What notify knows of a user (its replica of the user service's facts)."""

    user_id: str
    email: str | None = None
    phone: str | None = None
    role: UserRole = "Customer"
    channels: tuple[Channel, ...] = ()
    partial_fulfillment: str = "ask"
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class Draft:
    """A message for one user or for everyone holding a role, before channels are chosen."""

    type: NotificationType
    title: str
    body: str
    user_id: str | None = None
    role: UserRole | None = None
    entity_type: str | None = None
    entity_id: str | None = None
    # What makes two drafts "the same notification"; the event id unless a rule says otherwise.
    dedupe_scope: str | None = None
    # Held, then dropped if the profile was completed meanwhile (its events may come in any order).
    only_if_profile_incomplete: bool = False


@dataclass(frozen=True, slots=True)
class Delivery:
    """One notification on one channel to one recipient: the unit sent exactly once."""

    notification_id: str
    dedupe_key: str
    user_id: str
    channel: Channel
    type: NotificationType
    title: str
    body: str
    address: str | None = None
    entity_type: str | None = None
    entity_id: str | None = None
    only_if_profile_incomplete: bool = False


def channels_for(contact: Contact) -> tuple[Channel, ...]:
    """In-app always; the chosen channels, or email by default when none were chosen."""
    chosen = contact.channels or DEFAULT_CHANNELS
    ordered: list[Channel] = ["inApp"]
    ordered += [c for c in EXTERNAL_CHANNELS if c in chosen]
    return tuple(ordered)


def address_for(contact: Contact, channel: Channel) -> str | None:
    """Where a channel reaches the user (push targets the user id; in-app needs nothing)."""
    if channel == "email":
        return contact.email
    if channel == "sms":
        return contact.phone
    if channel == "push":
        return contact.user_id
    return None


def dedupe_key(scope: str, channel: Channel, user_id: str) -> str:
    """The unique key of (event, channel, recipient)."""
    return f"{scope}|{channel}|{user_id}"


def notification_id(key: str) -> str:
    """A stable id from the dedupe key, so a retried transaction writes the same row."""
    return str(uuid.uuid5(NOTIFICATION_NAMESPACE, key))


def deliveries(draft: Draft, scope: str, contact: Contact) -> list[Delivery]:
    """The draft on every channel the contact uses and can be reached on; none when deleted."""
    if contact.deleted:
        return []
    out: list[Delivery] = []
    for channel in channels_for(contact):
        address = address_for(contact, channel)
        if channel != "inApp" and not address:
            continue  # e.g. SMS chosen but no phone number: nothing to send it to
        key = dedupe_key(draft.dedupe_scope or scope, channel, contact.user_id)
        out.append(
            Delivery(
                notification_id=notification_id(key),
                dedupe_key=key,
                user_id=contact.user_id,
                channel=channel,
                type=draft.type,
                title=draft.title,
                body=draft.body,
                address=address,
                entity_type=draft.entity_type,
                entity_id=draft.entity_id,
                only_if_profile_incomplete=draft.only_if_profile_incomplete,
            )
        )
    return out


def _money(cents: int, currency: str) -> str:
    return f"{cents / 100:.2f} {currency}"


def _short(entity_id: str) -> str:
    return entity_id[-8:]


def _about_order(
    type_: NotificationType, title: str, body: str, data: Any, *, fact: str | None = None
) -> list[Draft]:
    """A message to the customer of an order, about that order.

    `fact`: the shipment or return the message is about: the message is then sent once per
    (type, fact), whatever event ids carry it (a producer re-emitting it sends nothing more)."""
    order = data.order_id
    return [
        Draft(
            type_,
            title.format(order=_short(order)),
            body,
            user_id=data.user_id,
            entity_type="order",
            entity_id=order,
            dedupe_scope=fact_scope(type_, fact) if fact else None,
        )
    ]


def fact_scope(type_: NotificationType, fact: str) -> str:
    """The dedupe scope of a message about a shipment or a return: one per (type, fact)."""
    return f"{type_}:{fact}"


def _units(lines: Any) -> int:
    return sum(line.quantity for line in lines)


def _after_confirmation(data: Event, *, base_url: str) -> list[Draft] | None:
    """Fulfilment and returns (api.md): shipped, delivered, a return's steps, its refund.

    Each is about the order (`entityType: order`, the web links it), sent once per shipment or
    return (`fact_scope`). None: not such an event."""
    match data:
        case ShipmentDispatched():
            return _about_order(
                "ORDER_SHIPPED",
                "Order {order} shipped",
                f"Your parcel is on its way with {data.carrier}, tracking number "
                f"{data.tracking_number}.",
                data,
                fact=data.shipment_id,
            )
        case ShipmentDelivered():
            return _about_order(
                "ORDER_DELIVERED",
                "Order {order} delivered",
                f"Your parcel was delivered on {data.delivered_at.date().isoformat()}. "
                f"Something not right? Ask for a return from the order: "
                f"{base_url}/api/v1/orders/{data.order_id}/returns",
                data,
                fact=data.shipment_id,
            )
        case ReturnRequested():
            return [
                Draft(
                    "RETURN_REQUESTED",
                    f"Return requested for order {_short(data.order_id)}",
                    f"The customer asks to return {_units(data.lines)} unit(s) of order "
                    f"{data.order_id} ({data.reason}), refund "
                    f"{_money(data.refund_cents, data.currency)}. Approve or reject it: "
                    f"{base_url}/api/v1/orders/{data.order_id}/returns",
                    role="Manager",
                    entity_type="order",
                    entity_id=data.order_id,
                    dedupe_scope=fact_scope("RETURN_REQUESTED", data.return_id),
                )
            ]
        case ReturnApproved():
            why = f" ({data.reason})" if data.reason else ""
            return _about_order(
                "RETURN_APPROVED",
                "Return for order {order} approved",
                f"Your return was approved{why}. Send the items back: the refund follows "
                "once we receive them.",
                data,
                fact=data.return_id,
            )
        case ReturnRejected():
            why = data.reason or "no reason given"
            return _about_order(
                "RETURN_REJECTED",
                "Return for order {order} rejected",
                f"Your return request was rejected: {why}.",
                data,
                fact=data.return_id,
            )
        case PaymentRefunded():
            if data.return_id is None:
                return []  # not a return's refund: api.md has no notification for it
            return _about_order(
                "REFUND_ISSUED",
                "Refund for order {order} issued",
                f"We refunded {_money(data.amount_cents, data.currency)} for your return.",
                data,
                fact=data.return_id,
            )
    return None


def drafts_for(
    envelope: Envelope[Event], *, base_url: str, customer: Contact | None
) -> list[Draft]:
    """The notifications an event asks for (`customer`: the replica of the user it concerns)."""
    data = envelope.data
    later = _after_confirmation(data, base_url=base_url)
    if later is not None:
        return later
    match data:
        case UserRegistered():
            body = (
                f"Hello {data.username}, your account is ready. Complete your profile "
                "(address and payment method) to order in one click."
            )
            return [
                Draft(
                    "WELCOME",
                    "Welcome to the shop",
                    body,
                    user_id=data.user_id,
                    entity_type="user",
                    entity_id=data.user_id,
                )
            ]
        case OrderPlaced():
            return _about_order(
                "ORDER_PLACED",
                "Order {order} received",
                f"We received your order of {len(data.items)} item(s) for "
                f"{_money(data.total_cents, data.currency)}.",
                data,
            )
        case StockPartiallyReserved():
            # Only a customer whose preference is "ask" must decide; order settles the others.
            if customer is not None and customer.partial_fulfillment != "ask":
                return []
            missing = ", ".join(
                f"{m.product_id} ({m.available}/{m.requested})" for m in data.missing
            )
            return _about_order(
                "ORDER_DECISION_REQUIRED",
                "Order {order}: part of it is out of stock",
                f"Some items are short: {missing}. Accept the partial order or cancel it "
                f"before {data.expires_at.isoformat()}: "
                f"{base_url}/api/v1/orders/{data.order_id}/decision",
                data,
            )
        case OrderConfirmed():
            partial = " (partially fulfilled)" if data.partial_fulfillment else ""
            return _about_order(
                "ORDER_CONFIRMED",
                "Order {order} confirmed",
                f"Your order is confirmed: {_money(data.total_cents, data.currency)}{partial}.",
                data,
            )
        case OrderRejected():
            alternatives = (
                f" You might like instead: {', '.join(data.alternatives)}."
                if data.alternatives
                else ""
            )
            return _about_order(
                "ORDER_REJECTED",
                "Order {order} could not be accepted",
                f"Your order was rejected ({data.reason}).{alternatives}",
                data,
            )
        case OrderCancelled():
            return _about_order(
                "ORDER_CANCELLED",
                "Order {order} cancelled",
                f"Your order was cancelled ({data.reason}).",
                data,
            )
        case PaymentFailed():
            return _about_order(
                "PAYMENT_FAILED",
                "Payment for order {order} failed",
                f"The payment did not go through ({data.reason}). Retry it, with the same "
                f"or another card: {base_url}/api/v1/orders/{data.order_id}/payment/retry",
                data,
            )
        case PromotionGranted():
            return [
                Draft(
                    "PROMOTION_GRANTED",
                    f"{data.percent_off}% off your next order",
                    f"Use code {data.code} before {data.expires_at.date().isoformat()}.",
                    user_id=data.user_id,
                    entity_type="promotion",
                    entity_id=data.code,
                )
            ]
        case OrderApprovalRequired():
            return [
                Draft(
                    "APPROVAL_REQUIRED",
                    f"Order {_short(data.order_id)} needs approval",
                    f"Order {data.order_id} of {_money(data.total_cents, data.currency)} waits "
                    f"for a Manager ({data.reason}): {base_url}/api/v1/orders/{data.order_id}",
                    role="Manager",
                    entity_type="order",
                    entity_id=data.order_id,
                )
            ]
        case StockLow():
            return [
                Draft(
                    "LOW_STOCK",
                    f"Low stock: {data.name}",
                    f"{data.name} ({data.product_id}) is down to {data.available} "
                    f"(threshold {data.threshold}).",
                    role="Admin",
                    entity_type="product",
                    entity_id=data.product_id,
                )
            ]
    return []


def profile_nudge(user_id: str) -> Draft:
    """The profile completion nudge; its scope is the user, so it goes out once per user."""
    return Draft(
        "PROFILE_INCOMPLETE",
        "Complete your profile",
        "Add a delivery address and a payment method to order in one click.",
        user_id=user_id,
        entity_type="user",
        entity_id=user_id,
        dedupe_scope=f"profile-nudge:{user_id}",
        only_if_profile_incomplete=True,
    )


def retry_delay(attempt: int, delays: tuple[float, ...]) -> float:
    """The wait after failed attempt `attempt` (1-based); the last delay repeats."""
    return delays[min(attempt, len(delays)) - 1]

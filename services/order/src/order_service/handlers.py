"""Event handlers of the order service, and its handler table.

So far the replica keepers: each writes the event's facts into the local replica, applying only
data newer than what is stored (see `replicas`). The saga handlers join them with the next issue.
`HANDLERS` at the bottom is the only place the service's subscriptions appear: the consumer binds
the service's queue to the routing keys of its keys.
"""

from __future__ import annotations

from bus import HandlerContext, HandlerTable
from contracts import Envelope
from contracts.analytics import PromotionGranted
from contracts.inventory import ProductCreated, ProductDeleted, ProductUpdated
from contracts.user import UserDeleted, UserProfileUpdated, UserRegistered, UserRoleChanged
from order_service import replicas


async def replicate_registered_user(
    envelope: Envelope[UserRegistered], ctx: HandlerContext
) -> None:
    """Add a new account to the user replica."""
    await replicas.user_registered(ctx.db, envelope.data, envelope.occurred_at, ctx.session)


async def replicate_user_profile(
    envelope: Envelope[UserProfileUpdated], ctx: HandlerContext
) -> None:
    """Keep the user replica's profile (completeness, addresses, payment methods, preferences)."""
    await replicas.user_profile_updated(ctx.db, envelope.data, envelope.occurred_at, ctx.session)


async def replicate_user_role(envelope: Envelope[UserRoleChanged], ctx: HandlerContext) -> None:
    """Keep the user replica's role."""
    await replicas.user_role_changed(ctx.db, envelope.data, envelope.occurred_at, ctx.session)


async def replicate_user_deletion(envelope: Envelope[UserDeleted], ctx: HandlerContext) -> None:
    """Mark a deleted user in the replica."""
    await replicas.user_deleted(ctx.db, envelope.data, envelope.occurred_at, ctx.session)


async def replicate_product(
    envelope: Envelope[ProductCreated | ProductUpdated | ProductDeleted], ctx: HandlerContext
) -> None:
    """Keep the product replica's name, price and currency (and deletion)."""
    await replicas.product_changed(ctx.db, envelope.data, envelope.occurred_at, ctx.session)


async def replicate_promotion(envelope: Envelope[PromotionGranted], ctx: HandlerContext) -> None:
    """Remember a promotion granted to a user."""
    await replicas.promotion_granted(ctx.db, envelope.data, envelope.occurred_at, ctx.session)


HANDLERS: HandlerTable = {
    UserRegistered: [replicate_registered_user],
    UserProfileUpdated: [replicate_user_profile],
    UserRoleChanged: [replicate_user_role],
    UserDeleted: [replicate_user_deletion],
    ProductCreated: [replicate_product],
    ProductUpdated: [replicate_product],
    ProductDeleted: [replicate_product],
    PromotionGranted: [replicate_promotion],
}

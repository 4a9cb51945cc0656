"""The service bus: topology, outbox and relay, inbox, consumer with retries and DLQ, fakes."""

from bus.config import BusConfig
from bus.connection import BusConnection
from bus.consumer import Consumer, OnCommitted
from bus.context import (
    AlreadyHandled,
    Handler,
    HandlerContext,
    HandlerTable,
    deduplicated_by_state,
    document_step,
    handler_name,
    routing_keys_for,
)
from bus.dlq import DeadLetter, dead_letter_count, list_dead_letters, redrive
from bus.fake import InMemoryBus
from bus.inbox import Inbox
from bus.outbox import Outbox, OutboxWriter
from bus.publisher import AmqpPublisher, Publisher, PublishFailed
from bus.relay import OutboxRelay, RawPublisher
from bus.service import ServiceBus
from bus.topology import Names, declare_topology, delete_topology

__all__ = [
    "AlreadyHandled",
    "AmqpPublisher",
    "BusConfig",
    "BusConnection",
    "Consumer",
    "DeadLetter",
    "Handler",
    "HandlerContext",
    "HandlerTable",
    "InMemoryBus",
    "Inbox",
    "Names",
    "OnCommitted",
    "Outbox",
    "OutboxRelay",
    "OutboxWriter",
    "PublishFailed",
    "Publisher",
    "RawPublisher",
    "ServiceBus",
    "dead_letter_count",
    "deduplicated_by_state",
    "document_step",
    "declare_topology",
    "delete_topology",
    "handler_name",
    "list_dead_letters",
    "redrive",
    "routing_keys_for",
]

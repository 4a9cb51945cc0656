"""Imports every producer module so that the registry knows the whole catalogue."""

from contracts import order  # noqa: F401

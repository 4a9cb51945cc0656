"""Fixtures shared by every test in the workspace live in kit.testing."""

pytest_plugins = ["kit.testing"]

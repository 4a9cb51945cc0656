"""Fixtures shared by every test in the workspace live in devkit.testing (libs/devkit)."""

pytest_plugins = ["devkit.testing"]

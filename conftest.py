"""Repository-wide pytest setup: MyST notebooks are collected and run as tests."""

pytest_plugins = ["tests.notebook_plugin"]

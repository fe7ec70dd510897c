"""Shared test configuration: plugins every test directory can use."""

pytest_plugins = ["tests.fakes.fixtures"]

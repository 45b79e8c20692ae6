"""Shared fixtures. Real servers come from the plugins in tests/support."""

pytest_plugins = [
    "tests.support.postgres",
    "tests.support.redis",
    "tests.support.kafka",
    "tests.support.peers",
]

"""Thin: the suite's wiring lives in fixtures/. Nothing here touches hardware at import time."""

pytest_plugins = [
    "fixtures.options",
    "fixtures.evidence",
    "fixtures.host",
    "fixtures.guest",
    "fixtures.memory",
    "fixtures.attestation",
    "fixtures.capabilities",
    "fixtures.results",
]

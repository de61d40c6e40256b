"""A real PostgreSQL for the inbox tests (tests/postgres.py): one server per session,
started only when a test asks for it, and a new database per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.postgres import PostgresServer


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def postgres(postgres_server: PostgresServer) -> str:
    """The DSN of a new, empty database."""
    return postgres_server.database()

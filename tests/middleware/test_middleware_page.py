"""docs/middleware.md's files as the page shows them: the container's middleware around the
listener's, the tenant in the handler's log line, the shared rate limit in Redis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from loguru import logger

from streamboot.testing import run_app
from tests.documented import documented_files as files_in
from tests.documented import forget_modules

DOC = Path(__file__).resolve().parents[2] / "docs" / "middleware.md"


def documented_files() -> dict[str, str]:
    return files_in(DOC.read_text())


async def test_the_middleware_page_runs_as_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, streamboot_url: str) -> None:
    files = documented_files()
    assert set(files) == {"shop/tenants.py", "app.yaml"}
    project = tmp_path / "page"
    for name, text in files.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    (project / "shop" / "__init__.py").touch()
    monkeypatch.syspath_prepend(str(project))
    records: list[Any] = []
    sink = logger.add(lambda m: records.append(m.record), level="INFO")
    client = aioredis.Redis.from_url(streamboot_url, decode_responses=True)
    await client.delete("invoices")
    try:
        async with run_app(project / "app.yaml", url=streamboot_url) as app:
            entry = await app.publish_fields("invoices", {"invoice": "i-1", "tenant": "acme"})
            await app.handled(entry)
            bucket = await client.hgetall("{invoices}:rate:billing")
    finally:
        logger.remove(sink)
        await client.aclose()
        forget_modules("shop")
    (line,) = [r for r in records if r["message"] == "invoice i-1"]
    assert line["extra"]["tenant"] == "acme"
    assert float(bucket["tokens"]) < 10  # the shared bucket was taken from, in Redis

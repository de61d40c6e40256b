"""``streamboot console``, as an on-call engineer uses it: a real browser (Debian's chromium
under Playwright) on the console's pages, a real application handling real entries. The
page's numbers are XINFO's; a dead letter replayed from the page is handled; a write
without the token, without the form's CSRF value or from another site is refused; each
page's screenshot is kept under build/console/."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import pytest
import yaml
from playwright.async_api import Page
from redis.asyncio import Redis

from streamboot import Application
from streamboot.config import settings_from_mapping
from streamboot.console.security import COOKIE, csrf_value
from streamboot.devserver import RedisServer
from streamboot.partitions.keys import lease_key, partition_key
from streamboot.wire.operator import RedisOperator
from tests.console.browser import SCREENSHOTS, browser, console_process
from tests.ops_app import OUTAGE, ops_settings

TOKEN = "console-test-token-0123456789"
DLQ = "{ops}:payments:dlq"


async def _stable(client: Redis, key: str, group: str) -> tuple[int, int]:
    """Lag and pending of ``group`` once two looks 0.3 s apart agree (bounded)."""
    deadline, last = time.monotonic() + 10, None
    while time.monotonic() < deadline:
        info = next(g for g in await client.xinfo_groups(key) if g["name"] == group)
        now = (int(info["lag"]), int(info["pending"]))
        if now == last:
            return now
        last = now
        await asyncio.sleep(0.3)
    raise AssertionError(f"{key} {group} never settled: {last}")


async def _cells(page: Page, row: str) -> dict[str, str]:
    cells = page.locator(f"{row} td[data-field]")
    return {await c.get_attribute("data-field") or "": (await c.inner_text()).strip()
            for c in await cells.all()}


async def _wait_for(condition: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


def _post(url: str, body: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body.encode(), method="POST", headers={
        "Content-Type": "application/x-www-form-urlencoded", **headers})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[RedisServer, Path, Application]]:
    with RedisServer() as server:
        config = tmp_path / "app.yaml"
        settings = ops_settings(server.url)
        config.write_text(yaml.safe_dump(settings))
        application = Application(settings_from_mapping(settings))
        await application.start()
        try:
            yield server, config, application
        finally:
            await application.stop()


@pytest.mark.fault
async def test_the_console_in_a_browser_shows_xinfo_and_replays_a_dead_letter(
        running: tuple[RedisServer, Path, Application]) -> None:
    server, config, application = running
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    client = Redis.from_url(server.url, decode_responses=True)
    raw = Redis.from_url(server.url)
    try:
        # orders: its first batches sit in slow handlers (lag and pending hold still);
        # payments: three entries dead-lettered during an outage, one with bytes that
        # are not UTF-8; emails: two partitions, both leased to the application.
        for n in range(40):
            await client.xadd("{ops}:orders", {"n": str(n), "sleep": "30"})
        await client.set(OUTAGE, "1")
        for name in ("p1", "p2", "p3"):
            await client.xadd("{ops}:payments", {"n": name, "fail": "card declined"})
        await raw.xadd("{ops}:payments", {b"n": b"p4", b"fail": b"x", b"note": b"\xff\xfe"})
        await _wait_for(lambda: _true_after(client.xlen(DLQ), 4))
        await client.delete(OUTAGE)  # the outage is over: replayed, they succeed
        lag, pending = await _stable(client, "{ops}:orders", "orders-group")
        assert pending > 0
        assert lag > 0

        with console_process(config, "--token", TOKEN, "--sample-every", "1s") as base:
            async with browser() as chromium:
                page = await chromium.new_page(viewport={"width": 1280, "height": 900})
                # The overview: the numbers of the page are XINFO's.
                await page.goto(f"{base}/")
                cells = await _cells(page, '#listeners tr[data-listener="orders"]')
                assert (cells["lag"], cells["pending"]) == (str(lag), str(pending))
                assert cells["length"] == str(await client.xlen("{ops}:orders"))
                assert cells["dead_letters"] == "0"
                payments = await _cells(page, '#listeners tr[data-listener="payments"]')
                assert payments["dead_letters"] == str(await client.xlen(DLQ)) == "4"
                consumers = await client.xinfo_consumers("{ops}:orders", "orders-group")
                assert cells["consumers"] == str(len(consumers))
                for index in (0, 1):  # each partition's owner is its lease's holder
                    key = partition_key("emails", index)
                    owner = await page.locator(
                        f'tr[data-stream="{key}"] td[data-field="owner"]').inner_text()
                    lease = await RedisOperator(raw).leases.state(lease_key(key))
                    assert owner.split()[0] == lease.owner == application_member(application)
                for _ in range(50):  # a few of the console's samples, for the picture
                    points = await page.locator("svg.chart").first.get_attribute(
                        "data-points")
                    if int(points or 0) >= 4:
                        break
                    await asyncio.sleep(0.2)
                    await page.reload()
                await page.screenshot(path=str(SCREENSHOTS / "overview.png"), full_page=True)

                # The listener: its pending entries, as XPENDING lists them.
                await page.click('#listeners a:text-is("orders")')
                await page.wait_for_selector("#pending")
                rows = await page.locator("#pending tbody tr").count()
                assert rows == pending
                await page.screenshot(path=str(SCREENSHOTS / "listener.png"), full_page=True)

                # The dead letters: binary-safe; a write before signing in is refused.
                await page.goto(f"{base}/listeners/payments/dead-letters")
                assert await page.locator("#dead-letters tbody tr").count() == 4
                assert "\\xff\\xfe" in await page.locator("#dead-letters").inner_text()
                await page.screenshot(path=str(SCREENSHOTS / "dead-letters.png"),
                                      full_page=True)
                await page.locator('tr:has-text("p1") input[name="pick"]').check()
                await page.click('button:text("Replay selected")')
                assert "needs the console's token" in await page.inner_text("main")
                assert await client.xlen(DLQ) == 4

                # Signed in: p1 replayed from the page, confirmed, handled by the app.
                await page.goto(f"{base}/login?next=/listeners/payments/dead-letters")
                await page.fill('input[name="token"]', TOKEN)
                await page.click('#login button')
                await page.wait_for_selector("#dead-letters")
                await page.locator('tr:has-text("p1") input[name="pick"]').check()
                await page.click('button:text("Replay selected")')
                await page.wait_for_selector("#confirm")
                assert "Replay 1 dead letter?" in await page.inner_text("h1")
                await page.screenshot(path=str(SCREENSHOTS / "confirm.png"), full_page=True)
                assert await client.xlen(DLQ) == 4  # nothing changed before the confirmation
                await page.click("#yes")
                assert "Replayed 1 dead letter" in await page.inner_text("h1")
                await page.screenshot(path=str(SCREENSHOTS / "replayed.png"), full_page=True)
                await _wait_for(lambda: _contains(client, "p1"))
                assert await client.xlen(DLQ) == 3

                # By filter: the dead letters whose field n is p2.
                await page.goto(f"{base}/listeners/payments/dead-letters?where=n%3Dp2")
                assert await page.locator("#dead-letters tbody tr").count() == 1
                await page.click("#replay-matching")
                await page.click("#yes")
                await _wait_for(lambda: _contains(client, "p2"))
                # And a purge of the rest, all selected.
                await page.goto(f"{base}/listeners/payments/dead-letters")
                await page.check("#all")
                await page.click('button:text("Purge selected")')
                assert "Delete 2 dead letters?" in await page.inner_text("h1")
                await page.click("#yes")
                assert await client.xlen(DLQ) == 0
                handled = await client.lrange("{ops}:handled", 0, -1)
                assert "p3" not in handled
                assert "p4" not in handled

                # Writes over plain HTTP with this browser's session: refused without the
                # cookie, without the CSRF value, from another site, to another Host;
                # done with all of them; refused again once signed out (the session ends).
                await raw.xadd(DLQ, {b"n": b"p9", b"dlq_reason": b"max_deliveries",
                                     b"dlq_stream": b"{ops}:payments", b"dlq_fields": b"1"})
                apply = f"{base}/listeners/payments/dead-letters/apply"
                letters = await client.xrange(DLQ)
                assert letters
                form = f"action=purge&pick={letters[0][0]!s}+%7Bops%7D%3Apayments%3Adlq"
                (session,) = [c["value"] for c in await page.context.cookies()
                              if c["name"] == COOKIE]
                cookie, csrf = f"{COOKIE}={session}", f"&csrf={csrf_value(TOKEN, session)}"
                assert _post(apply, form + csrf, {}) == 403
                assert _post(apply, form, {"Cookie": cookie}) == 403
                assert _post(apply, form + csrf, {"Cookie": cookie,
                                                  "Origin": "http://evil.example"}) == 403
                assert _post(apply, form + csrf, {"Cookie": cookie,
                                                  "Host": "evil.example"}) == 421
                assert _post(apply, form + csrf, {"Authorization": f"Bearer {TOKEN}",
                                                  "Origin": "http://evil.example"}) == 403
                assert await client.xlen(DLQ) == 1
                await page.click('button:text("sign out")')
                assert _post(apply, form + csrf, {"Cookie": cookie, "Origin": base}) == 403
                assert await client.xlen(DLQ) == 1
                assert _post(apply, form, {"Authorization": f"Bearer {TOKEN}"}) == 200
                assert await client.xlen(DLQ) == 0

    finally:
        await client.aclose()
        await raw.aclose()


def application_member(application: Application) -> str:
    assert application.membership is not None
    return application.membership.listeners[0].member


async def _true_after(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def _contains(client: Redis, n: str) -> bool:
    return n in await client.lrange("{ops}:handled", 0, -1)

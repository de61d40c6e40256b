"""``streamboot new DIR``: the files of a runnable starter project, as a pure function.

The starter is what docs/getting-started.md builds by hand — an application file, one
handler with a pydantic payload, one test that uses the test kit — so a new project
starts from something that already passes its own test.
"""

from __future__ import annotations

import importlib.util
import keyword
import re
import sys

_PYPROJECT = '''\
[project]
name = "{distribution}"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["streamboot"]

[project.optional-dependencies]
test = ["streamboot[testing]"]

[tool.setuptools]
packages = ["{package}"]

[tool.pytest.ini_options]
asyncio_mode = "auto"
asyncio_default_fixture_loop_scope = "function"
testpaths = ["tests"]
pythonpath = ["."]
'''

_APP = '''\
# The application file: every key is documented in Streamboot's docs/configuration.md.
# `streamboot check app.yaml` validates it, imports the handler and reaches Redis.
application:
  name: {project}

redis:
  url: ${{REDIS_URL:redis://127.0.0.1:6379/0}}

listeners:
  orders:
    stream: orders
    group: {project}
    handler: {package}.handlers:OrderHandler
    retry: {{max_deliveries: 3, backoff: 200ms}}
'''

_HANDLERS = '''\
"""The handlers of {project}: each is generic in its payload, a pydantic model."""

from __future__ import annotations

from loguru import logger
from pydantic import BaseModel, Field

from streamboot import Message, StreamHandler


class OrderPlaced(BaseModel):
    order_id: str = Field(min_length=1)
    qty: int = Field(ge=1)


class OrderHandler(StreamHandler[OrderPlaced]):
    """Acked when this returns; retried when it raises, then dead-lettered."""

    def __init__(self) -> None:
        self.handled: list[OrderPlaced] = []

    async def handle(self, message: Message[OrderPlaced]) -> None:
        order = message.payload
        logger.info("order {{}}: {{}} unit(s)", order.order_id, order.qty)
        self.handled.append(order)
'''

_TEST = '''\
"""Runs the application file against a real throwaway server (Streamboot's test kit)."""

from __future__ import annotations

from pathlib import Path

from {package}.handlers import OrderHandler, OrderPlaced
from streamboot.testing import message_of, run_app

APP = Path(__file__).resolve().parents[1] / "app.yaml"


async def test_an_order_is_handled(streamboot_url: str) -> None:
    async with run_app(APP, url=streamboot_url) as app:
        entry = await app.publish("orders", OrderPlaced(order_id="o1", qty=2))
        await app.handled(entry)
        handler = app.handler("orders")
        assert isinstance(handler, OrderHandler)
        assert handler.handled == [OrderPlaced(order_id="o1", qty=2)]


async def test_an_invalid_order_is_dead_lettered(streamboot_url: str) -> None:
    async with run_app(APP, url=streamboot_url) as app:
        entry = await app.publish_fields("orders", {{"order_id": "o2", "qty": "0"}})
        (dead,) = await app.dead_lettered(entry)
    assert dead.reason == "invalid_payload"


async def test_the_handler_alone() -> None:
    handler = OrderHandler()
    await handler.handle(message_of(OrderPlaced(order_id="o3", qty=1)))
    assert [order.order_id for order in handler.handled] == ["o3"]
'''

_README = '''\
# {project}

A Streamboot application: `app.yaml` declares the listener, `{package}/handlers.py` holds
its handler.

```bash
pip install -e '.[test]'
pytest                          # the handler's tests, on a real throwaway server
streamboot check app.yaml       # validate the file, import the handler, reach Redis
streamboot run app.yaml         # consume until Ctrl-C (REDIS_URL says where Redis is)
streamboot publish orders order_id=o1 qty=2 -c app.yaml
```
'''


def package_name(directory_name: str) -> str:
    """A Python package name for the project directory ("orders-app" → "orders_app"); one
    that would shadow a module already importable (``redis``, ``yaml``, the standard
    library's) gets an ``app_`` prefix, or the starter's own imports would break."""
    name = re.sub(r"\W+", "_", directory_name.strip().lower()).strip("_") or "app"
    if name[0].isdigit() or keyword.iskeyword(name) or name in ("tests", "test") \
            or _importable(name):
        name = f"app_{name}"
    return name


def _importable(name: str) -> bool:
    if name in sys.stdlib_module_names:
        return True
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return True  # something by that name is there, broken or not: do not shadow it


def starter_files(directory_name: str) -> dict[str, str]:
    """Relative path → text of every file of the starter project."""
    package = package_name(directory_name)
    project = package.replace("_", "-")
    values = {"project": project, "package": package, "distribution": project}
    return {
        "pyproject.toml": _PYPROJECT.format(**values),
        "app.yaml": _APP.format(**values),
        f"{package}/__init__.py": "",
        f"{package}/handlers.py": _HANDLERS.format(**values),
        "tests/test_handlers.py": _TEST.format(**values),
        "README.md": _README.format(**values),
    }

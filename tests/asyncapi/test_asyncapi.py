"""``streamboot asyncapi``: the document of a real application file, validated against the
AsyncAPI 3.0 JSON Schema (asyncapi/spec-json-schemas, vendored beside this test), its
references resolved, its payload schemas the models'; and what bad input says."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from streamboot.asyncapi import asyncapi_document
from streamboot.config import settings_from_mapping

SCHEMA = json.loads((Path(__file__).parent / "asyncapi-3.0.0.schema.json").read_text())
ROOT = Path(__file__).resolve().parents[2]

APP = """
application: {name: shop}
redis: {url: "redis://:secret@127.0.0.1:6390/2"}
container:
  class: ""
listeners:
  orders:
    stream: orders
    group: fulfilment
    handler: tests.asyncapi.beans:Orders
    ordering_key: customer
    idempotency: {key: order_id}
  payments:
    stream: payments
    group: ledger
    handler: tests.asyncapi.beans:Payments
    codec: json
    partitions: 3
  clicks:
    stream: clicks
    group: stats
    handler: tests.asyncapi.beans:Raw
    rotation: {key_format: "clicks:%Y%m%d%H", period: 1h}
    dead_letter: {enabled: false}
"""


def _errors(document: dict[str, Any]) -> list[str]:
    """Each violation as ``path: reason``, the reasons from inside AsyncAPI's ``oneOf``s
    (a channel is a Reference or a Channel: the Channel's reason is the telling one)."""
    def leaves(error: Any) -> list[Any]:
        return [leaf for sub in error.context for leaf in leaves(sub)] if error.context \
            else [error]

    validator = jsonschema.Draft7Validator(SCHEMA)
    return [f"{'/'.join(map(str, e.absolute_path))}: {leaf.message}"
            for e in validator.iter_errors(document) for leaf in leaves(e)]


def _unresolved(document: dict[str, Any]) -> list[str]:
    """Every ``$ref`` that does not point at a node of the document."""
    missing = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                target: Any = document
                for part in ref.removeprefix("#/").split("/"):
                    if not isinstance(target, dict) or part not in target:
                        missing.append(ref)
                        break
                    target = target[part]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    return missing


def _app(tmp_path: Path, text: str = APP) -> Path:
    path = tmp_path / "app.yaml"
    path.write_text(text.replace('container:\n  class: ""\n', ""))
    return path


def _command(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streamboot", "asyncapi", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_the_document_is_valid_asyncapi_3_and_describes_every_stream(tmp_path: Path) -> None:
    out = tmp_path / "asyncapi.json"
    done = _command(tmp_path, str(_app(tmp_path)), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout
    assert "AsyncAPI 3.0.0" in done.stdout
    document = json.loads(out.read_text())
    assert _errors(document) == []
    assert _unresolved(document) == []
    assert document["info"]["title"] == "shop"
    assert document["servers"] == {"redis": {"host": "127.0.0.1:6390", "protocol": "redis",
                                             "pathname": "/2"}}  # no password
    channels, operations = document["channels"], document["operations"]
    assert set(channels) == {"orders", "orders.dlq", "payments.p0", "payments.p1",
                             "payments.p2", "payments.p0.dlq", "payments.p1.dlq",
                             "payments.p2.dlq", "clicks"}
    assert channels["orders"]["address"] == "orders"
    assert channels["orders.dlq"]["x-redis-key"] == "{orders}:dlq"
    # A hash tag is not an AsyncAPI parameter: no address, the exact key beside it.
    assert channels["payments.p1"]["address"] is None
    assert channels["payments.p1"]["x-redis-key"] == "{payments:p1}"
    assert channels["clicks"]["address"] == "clicks:{period}"
    assert set(channels["clicks"]["parameters"]) == {"period"}
    receive = operations["orders.receive"]
    assert receive["action"] == "receive"
    assert receive["x-streamboot-group"] == "fulfilment"
    assert receive["x-streamboot-ordering-key"] == "customer"
    assert receive["x-streamboot-idempotency-key"] == "order_id"
    assert {o for o in operations if o.startswith("payments.")} == {
        f"payments.p{i}.{what}" for i in range(3) for what in ("receive", "dead_letter")}
    assert operations["payments.p2.receive"]["x-streamboot-handler"] == "BatchHandler"
    assert "clicks.dead_letter" not in operations  # dead letters disabled
    messages = document["components"]["messages"]
    order = messages["Order"]["payload"]
    assert set(order["properties"]) == {"order_id", "customer", "lines"}
    assert order["properties"]["lines"]["items"] == {"$ref": "#/components/schemas/Line"}
    assert set(document["components"]["schemas"]["Line"]["properties"]) == {"sku", "qty"}
    assert messages["Order"]["x-streamboot-codec"] == "flat"
    assert messages["Payment"]["contentType"] == "application/json"
    assert messages["clicks.fields"]["payload"]["additionalProperties"] == {"type": "string"}
    assert "dlq_reason" in messages["DeadLetter"]["payload"]["properties"]


def test_yaml_on_stdout_is_the_same_document(tmp_path: Path) -> None:
    app = _app(tmp_path)
    done = _command(tmp_path, str(app))
    assert done.returncode == 0, done.stderr
    out = tmp_path / "a.json"
    assert _command(tmp_path, str(app), "-o", str(out)).returncode == 0
    assert yaml.safe_load(done.stdout) == json.loads(out.read_text())


def test_the_schema_check_catches_a_broken_document(tmp_path: Path) -> None:
    """The validation above can fail: an operation without its action, a channel with a
    field AsyncAPI does not know."""
    settings = settings_from_mapping(yaml.safe_load(_app(tmp_path).read_text()))
    from tests.asyncapi import beans

    document = asyncapi_document(settings, {"orders": beans.Order, "payments": beans.Payment,
                                            "clicks": None})
    assert _errors(document) == []
    del document["operations"]["orders.receive"]["action"]
    document["channels"]["orders"]["stream"] = "orders"
    errors = _errors(document)
    assert any("'action' is a required property" in e for e in errors)
    assert any("'stream' does not match any of the regexes" in e for e in errors)


@pytest.mark.parametrize(("handler", "says"), [
    ("tests.asyncapi.beans:Nowhere", "module 'tests.asyncapi.beans' has no 'Nowhere'"),
    ("nosuch", "the container has no provider named 'nosuch'"),
])
def test_a_handler_that_cannot_be_found_is_one_problem_and_exit_2(
        tmp_path: Path, handler: str, says: str) -> None:
    app = _app(tmp_path, APP.replace("tests.asyncapi.beans:Raw", handler))
    done = _command(tmp_path, str(app))
    assert done.returncode == 2
    assert "1 problem:" in done.stderr
    assert f"listeners.clicks.handler: listener 'clicks', handler {handler!r}" in done.stderr
    assert says in done.stderr
    assert "Traceback" not in done.stderr


def test_the_sample_apps_document_is_valid_and_names_its_providers_payloads(
        tmp_path: Path) -> None:
    """config/application.yaml names its handlers by provider (the container's): their
    classes are read off the providers, no bean is built, no Redis is needed."""
    out = tmp_path / "sample.json"
    done = _command(tmp_path, "config/application.yaml", "--out", str(out))
    assert done.returncode == 0, done.stderr
    document = json.loads(out.read_text())
    assert _errors(document) == []
    assert _unresolved(document) == []
    assert {"orders", "analytics", "notifications"} <= set(document["channels"])
    assert "OrderPlaced" in document["components"]["messages"]


def test_the_asyncapi_page_runs_as_written(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/asyncapi.md: its files and its command give a valid document whose channel
    and message are the page's."""
    from tests.documented import documented_files

    page = (ROOT / "docs" / "asyncapi.md").read_text()
    files = documented_files(page)
    assert set(files) == {"shop/events.py", "app.yaml"}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / "shop" / "__init__.py").touch()
    lines = page.splitlines()
    (at,) = [n for n, line in enumerate(lines) if line.startswith("$ streamboot asyncapi")]
    command, said = lines[at].removeprefix("$ "), lines[at + 1]
    done = subprocess.run([sys.executable, "-m", "streamboot", *command.split()[1:]],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == said  # what the page says it prints
    document = json.loads((tmp_path / "asyncapi.json").read_text())
    assert _errors(document) == []
    assert _unresolved(document) == []
    assert document["channels"]["orders"]["address"] == "orders"
    payload = document["components"]["messages"]["OrderPlaced"]["payload"]
    assert payload["required"] == ["order_id", "sku", "qty"]


def test_one_model_under_two_codecs_is_two_messages_and_a_rotated_dlq_is_a_format(
        tmp_path: Path) -> None:
    """A trial found the orders model described once, as JSON, for a flat listener too;
    and a rotated listener's dead letters given a pattern as their exact key."""
    from tests.asyncapi import beans

    settings = settings_from_mapping({"listeners": {
        "orders": {"stream": "orders", "group": "g", "handler": "x:Y"},
        "orders_json": {"stream": "orders-json", "group": "g", "handler": "x:Y",
                        "codec": "json"},
        "hourly": {"stream": "hourly", "group": "g", "handler": "x:Y",
                   "rotation": {"key_format": "hourly:%Y%m%d%H", "period": "1h"}}}})
    document = asyncapi_document(settings, {"orders": beans.Order, "orders_json": beans.Order,
                                            "hourly": beans.Order})
    assert _errors(document) == []
    assert _unresolved(document) == []
    channels, messages = document["channels"], document["components"]["messages"]
    flat = next(iter(channels["orders"]["messages"]))
    json_ = next(iter(channels["orders_json"]["messages"]))
    assert flat != json_
    assert messages[flat]["x-streamboot-codec"] == "flat"
    assert messages[json_]["x-streamboot-codec"] == "json"
    assert messages[json_]["contentType"] == "application/json"
    dlq = channels["hourly.dlq"]
    assert "x-redis-key" not in dlq
    assert dlq["x-redis-key-format"] == "{hourly:%Y%m%d%H}:dlq"
    assert dlq["address"] is None  # a hash tag: not an AsyncAPI address


@pytest.mark.parametrize("where", ["nowhere/x.json", "", "."])
def test_an_out_file_that_cannot_be_written_is_one_line(tmp_path: Path, where: str) -> None:
    out = str(tmp_path / where) if where else ""
    done = _command(tmp_path, str(_app(tmp_path)), "--out", out)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "cannot write" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr

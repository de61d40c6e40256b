"""``streamboot asyncapi``: the application file's AsyncAPI 3.0 document (asyncapi/)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from ..asyncapi import asyncapi_document
from ..config.loader import load_settings
from ..config.models import AppSettings
from ..di import build_container, import_handler_class, resolve_handler
from ..errors import ConfigError, ConfigProblem, HandlerResolutionError
from ..handler import BatchHandler, StreamHandler
from ..process.shutdown import EXIT_CONFIG
from .checks import close_container
from .common import ConfigOption, err, out, print_problems
from .run import ConfigArg, _app_file, _import_from_cwd

OutOption = Annotated[Path | None, typer.Option(
    "--out", "-o", help="Write it to this file (.json: JSON, else YAML); default: stdout.")]
VersionOption = Annotated[str, typer.Option(
    "--api-version", help="The document's info.version (your API's version).")]


def asyncapi(config_arg: ConfigArg = None, config_option: ConfigOption = None,
             out_file: OutOption = None, api_version: VersionOption = "1.0.0") -> None:
    """Write the AsyncAPI 3.0 document of the file's streams, payloads and groups."""
    config = _app_file(config_arg, config_option)
    _import_from_cwd()
    try:
        settings = load_settings(config)
        payloads, kinds = asyncio.run(handler_types(settings, str(config)))
    except ConfigError as exc:
        print_problems(exc)
        raise typer.Exit(EXIT_CONFIG) from None
    document = asyncapi_document(settings, payloads, kinds, version=api_version)
    if out_file is not None and out_file.suffix.lower() == ".json":
        text = json.dumps(document, indent=2) + "\n"
    else:
        text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    if out_file is None:
        typer.echo(text, nl=False)
        return
    try:
        out_file.write_text(text)
    except OSError as exc:
        err.print(f"cannot write {str(out_file)!r}: {exc.strerror or exc}", markup=False)
        raise typer.Exit(EXIT_CONFIG) from None
    out.print(f"wrote {out_file}: AsyncAPI {document['asyncapi']}, "
              f"{len(document['channels'])} channels, "
              f"{len(document['operations'])} operations", markup=False)


async def handler_types(settings: AppSettings,
                        file: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Each listener's payload type and handler kind, from its class: imported (an import
    path) or read off its provider; a bean is built only when its provider does not say
    its class. Every handler that cannot be found is one problem."""
    payloads: dict[str, Any] = {}
    kinds: dict[str, str] = {}
    problems = []
    container = build_container(settings, file)
    try:
        for name, listener in settings.listeners.items():
            where = f"listener {name!r}, handler {listener.handler!r}"
            try:
                cls = _class_of(listener.handler, container, where)
                if cls is None:
                    cls = type(await resolve_handler(listener.handler, container, name))
            except HandlerResolutionError as exc:
                problems.append(ConfigProblem(file, f"listeners.{name}.handler", str(exc)))
                continue
            payloads[name] = cls.payload_type
            kinds[name] = "BatchHandler" if issubclass(cls, BatchHandler) else "StreamHandler"
    finally:
        await close_container(container)
    if problems:
        raise ConfigError(problems)
    return payloads, kinds


def _class_of(ref: str, container: Any, where: str) -> type[StreamHandler[Any]] | None:
    if ":" in ref:
        return import_handler_class(ref, where)
    provider = getattr(container, ref, None)
    cls = getattr(provider, "cls", None)
    if isinstance(cls, type) and issubclass(cls, StreamHandler):
        return cls
    return None

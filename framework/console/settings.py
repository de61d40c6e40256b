"""The console's own settings (``streamboot console``'s options), validated like every
configuration object."""

from __future__ import annotations

from datetime import timedelta
from ipaddress import ip_address

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class ConsoleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    """where it listens: loopback by default; any other address needs a token given"""
    port: int = Field(default=8089, ge=0, le=65535)
    token: str | None = Field(default=None, min_length=16)
    """what a browser logs in with (and a script sends as ``Authorization: Bearer``);
    needed for every write, and on a non-loopback bind for every page"""
    token_given: bool = False
    """False when the command made the token up (it prints it): a non-loopback bind
    refuses that, so nobody exposes a console whose token scrolled past in a log"""
    sample_every: timedelta = timedelta(seconds=5)
    """how often the console samples lag, pending and deliveries for its charts"""
    history: timedelta = timedelta(hours=1)
    """how far back the charts go"""
    prometheus_url: str | None = None
    """read the charts from this Prometheus (``query_range``) instead of sampling"""
    dead_letters_shown: int = Field(default=200, ge=1, le=10_000)
    """dead letters listed per dead-letter stream (oldest first)"""

    @field_validator("prometheus_url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _exposed_needs_a_token(self) -> ConsoleSettings:
        if not is_loopback(self.host) and not (self.token and self.token_given):
            raise ValueError(
                f"--host {self.host} is not a loopback address: give --token (or "
                "STREAMBOOT_CONSOLE_TOKEN), which every page then asks for")
        if self.sample_every <= timedelta(0) or self.history < self.sample_every:
            raise ValueError("--sample-every must be positive and at most the history")
        return self

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)


def is_loopback(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 and ::1; every other name or address is not."""
    if host == "localhost":
        return True
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False

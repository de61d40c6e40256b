"""Who may do what in the console, as pure decisions (the app applies them).

Reading is open on a loopback bind and needs a session on any other; every write needs a
session (or the token as ``Authorization: Bearer``), comes from this console's own origin,
and — from a browser — carries its form's CSRF value. A session is a random id the console
made at sign-in and keeps in memory: signing out (or a restart) ends it for good. Its cookie
is HttpOnly and SameSite=Strict: a page of another site can neither read it nor make the
browser send it with a form post, and the CSRF value (an HMAC of the session id under the
token) is what such a page cannot know."""

from __future__ import annotations

import hmac
from collections.abc import Container, Mapping
from dataclasses import dataclass
from hashlib import sha256
from urllib.parse import urlsplit

COOKIE = "streamboot_console"


def csrf_value(token: str, session: str) -> str:
    """What every write form of this session carries (hidden ``csrf``)."""
    return hmac.new(token.encode(), f"csrf:{session}".encode(), sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class Caller:
    """What a request shows of who sent it."""

    cookie: str | None
    bearer: str | None
    origin: str | None
    """Origin, else Referer's scheme://host[:port]; None when neither was sent."""
    host: str | None


def caller(headers: Mapping[str, str], cookies: Mapping[str, str]) -> Caller:
    auth = headers.get("authorization", "")
    bearer = auth[7:].strip() if auth.lower().startswith("bearer ") else None
    origin = headers.get("origin")
    if not origin and headers.get("referer"):
        parts = urlsplit(headers["referer"])
        origin = f"{parts.scheme}://{parts.netloc}" if parts.netloc else None
    return Caller(cookies.get(COOKIE), bearer, origin, headers.get("host"))


def signed_in(token: str, sessions: Container[str], who: Caller) -> bool:
    if who.bearer is not None:
        return hmac.compare_digest(who.bearer.encode(), token.encode())
    return who.cookie is not None and who.cookie in sessions


def may_read(token: str, sessions: Container[str], loopback: bool, who: Caller) -> bool:
    return loopback or signed_in(token, sessions, who)


def cross_site(who: Caller) -> bool:
    """The request names an origin other than this console's (a page of another site
    posting here); one that names none (curl, a script) is not judged by it."""
    return who.origin is not None and who.host is not None and \
        urlsplit(who.origin).netloc != who.host


def write_refusal(token: str, sessions: Container[str], who: Caller,
                  csrf: str | None) -> str | None:
    """Why a write is refused (a line for the 403 page), or None when it may go ahead."""
    if not signed_in(token, sessions, who):
        return "this action needs the console's token: sign in first"
    if cross_site(who):
        return f"refused a request from another site ({who.origin})"
    if who.bearer is not None:
        return None  # not a browser's ambient credential: a page cannot send it by itself
    assert who.cookie is not None
    if csrf is None or not hmac.compare_digest(csrf, csrf_value(token, who.cookie)):
        return "the form's CSRF value is missing or wrong: reload the page and try again"
    return None


def host_allowed(host_header: str | None, bound: str, loopback: bool) -> bool:
    """On a loopback bind only loopback names may be in Host: a page of another site that
    rebinds its own name to 127.0.0.1 (DNS rebinding) is refused."""
    if not loopback:
        return True
    if not host_header:
        return False
    name = urlsplit(f"//{host_header}").hostname or ""
    return name in ("localhost", "127.0.0.1", "::1") or name == bound or \
        name.startswith("127.")

"""Who may do what in the console, as pure decisions (the app applies them).

Reading is open on a loopback bind and needs the session on any other; every write needs
the session *and* its form's CSRF value, and is refused when the request comes from another
origin. The session cookie holds an HMAC of the token (never the token), is HttpOnly and
SameSite=Strict: a page of another site can neither read it nor make the browser send it
with a form post, and the CSRF value (an HMAC of the session) is what such a page cannot
know. A script may instead send ``Authorization: Bearer <token>``, which a browser never
adds to a cross-site request by itself."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from hashlib import sha256
from urllib.parse import urlsplit

COOKIE = "streamboot_console"


def _mac(token: str, purpose: str) -> str:
    return hmac.new(token.encode(), purpose.encode(), sha256).hexdigest()


def session_value(token: str) -> str:
    """What the session cookie holds once the token was given."""
    return _mac(token, "session")


def csrf_value(token: str) -> str:
    """What every write form carries (hidden ``csrf``)."""
    return _mac(token, "csrf:" + session_value(token))


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


def signed_in(token: str, who: Caller) -> bool:
    if who.bearer is not None:
        return hmac.compare_digest(who.bearer.encode(), token.encode())
    return who.cookie is not None and hmac.compare_digest(who.cookie, session_value(token))


def may_read(token: str, loopback: bool, who: Caller) -> bool:
    return loopback or signed_in(token, who)


def write_refusal(token: str, who: Caller, csrf: str | None) -> str | None:
    """Why a write is refused (a line for the 403 page), or None when it may go ahead."""
    if not signed_in(token, who):
        return "this action needs the console's token: sign in first"
    if who.bearer is not None:
        return None  # not a browser's ambient credential: no cross-site risk
    if who.origin is not None and who.host is not None and urlsplit(who.origin).netloc \
            != who.host:
        return f"refused a request from another site ({who.origin})"
    if csrf is None or not hmac.compare_digest(csrf, csrf_value(token)):
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

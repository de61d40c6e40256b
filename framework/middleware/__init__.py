"""Code around each handling: the team's middlewares, in order, with the message in hand
and the outcome after (chain.py); the built-in rate limiter (rate_limit.py)."""

from .chain import CallNext, Middleware
from .rate_limit import RateLimiter

__all__ = ["CallNext", "Middleware", "RateLimiter"]

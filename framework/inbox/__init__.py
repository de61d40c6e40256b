"""The inbox: "this entry was handled" recorded in the team's own database, in the same
transaction as the handler's effect (inbox.py; the SQL per driver in dialects.py)."""

from .inbox import Inbox

__all__ = ["Inbox"]

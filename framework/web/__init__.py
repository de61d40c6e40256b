"""Streamboot inside a web application: its lifespan runs the listeners (or only the
publishers), and routes get a listener's Publisher as a dependency (embedded.py)."""

from .embedded import EmbeddedApp

__all__ = ["EmbeddedApp"]

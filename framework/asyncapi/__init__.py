"""The application file as an AsyncAPI 3.0 document (``streamboot asyncapi``)."""

from .document import ASYNCAPI_VERSION, asyncapi_document

__all__ = ["ASYNCAPI_VERSION", "asyncapi_document"]

"""Real servers for tests: uvicorn in a background thread (see pat_middleware.serve)."""

from __future__ import annotations

from pat_middleware.serve import ASGIApp, serve_asgi

__all__ = ["ASGIApp", "serve_asgi"]

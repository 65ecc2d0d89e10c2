"""Serving a trained model: the web chat (``app``: FastAPI + uvicorn, server-sent events, one HTML page)."""

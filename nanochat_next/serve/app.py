"""``serve``: a web chat over a trained model, as nanochat's chat_web: an ASGI app (FastAPI, run by uvicorn) with
one HTML page (chat.html: no build step) and a streaming endpoint.

- ``GET /``: the page. ``GET /health``: ``{"status": "loading" | "ready" | "failed", ...}``.
- ``POST /chat`` with ``{"messages": [...], "temperature": 0.8, "top_k": 50, "max_tokens": 256, "seed": 0}``:
  server-sent events, ``data: {"token": "text"}`` per piece as it is generated (a multi-byte character is
  sent whole), then ``data: {"done": true, "stop_reason": ..., "dropped": N, "tokens": [...]}``.

What it refuses, each with a JSON ``{"error": "..."}`` and a status code, never a crash: a model still loading
(503), bad JSON or messages (400: roles, order, the last message must be the user's), sampling values out of
range (400), a last message that alone exceeds the context (413; older turns are dropped to fit, and
``dropped`` says how many), more than ``max_concurrent`` generations at once (429).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from fastapi import FastAPI, Request  # the serve extra; FastAPI reads the handlers' annotations from here
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.concurrency import iterate_in_threadpool

from nanochat_next.errors import UserError

PAGE = Path(__file__).with_name("chat.html")
LIMITS = {"max_tokens": (1, 4096), "top_k": (0, 100_000), "temperature": (0.0, 5.0)}


class ModelHolder:
    """Loads the model in a background thread; the app answers 503 until it is ready."""

    def __init__(self, checkpoint: str, device: str, loader=None):
        self.status, self.error, self.model, self.tokenizer, self.info = "loading", None, None, None, {}
        self.checkpoint, self.device = checkpoint, device
        self.loader = loader or self._load
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _load(self):
        from nanochat_next.model.saving import load_trained

        return load_trained(self.checkpoint, self.device)

    def _run(self) -> None:
        try:
            self.model, self.tokenizer, config = self.loader()
            self.info = {"style": self.model.style, "context": self.model.config.sequence_len,
                         "parameters": sum(p.numel() for p in self.model.parameters()),
                         "fine_tuned": (Path(self.checkpoint) / "sft.json").is_file()}
            self.status = "ready"
        except Exception as exc:  # reported by /health and by every request, never raised into the server
            self.status, self.error = "failed", f"{type(exc).__name__}: {exc}"


def number(body: dict, name: str, default, kind):
    value = body.get(name, default)
    low, high = LIMITS[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and int(value) != value):
        raise UserError(f"{name} must be a{'n integer' if kind is int else ' number'}, got {value!r}")
    if not low <= value <= high:
        raise UserError(f"{name} must be between {low} and {high}, got {value}")
    return kind(value)


def parse_request(raw: bytes) -> dict:
    """The request's messages (checked) and sampling settings; UserError says what is wrong."""
    from nanochat_next.tokenizer.chat_template import chat_messages

    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise UserError("the request body must be JSON") from None
    if not isinstance(body, dict):
        raise UserError('the request body must be a JSON object {"messages": [...]}')
    messages = chat_messages(body)
    if messages[-1]["role"] != "user":
        raise UserError("the last message must be the user's: there is nothing to reply to")
    if any(not isinstance(m.get("content"), str) or not m["content"].strip() for m in messages):
        raise UserError("every message needs non-empty text content")
    return {"messages": [dict(m) for m in body["messages"]], "temperature": number(body, "temperature", 0.8, float),
            "top_k": number(body, "top_k", 50, int), "max_tokens": number(body, "max_tokens", 256, int),
            "seed": body.get("seed", 0) if isinstance(body.get("seed", 0), int) else 0}


def events(holder: ModelHolder, request: dict, prompt: list[int], dropped: int) -> Iterator[str]:
    """Server-sent events of one generation (run in a worker thread: the model computes there)."""
    from nanochat_next.infer.engine import Engine

    engine = Engine(holder.model, holder.tokenizer)
    tokens: list[int] = []
    for token, piece in engine.stream_pieces(prompt, request["max_tokens"], temperature=request["temperature"],
                                             top_k=request["top_k"] or None, seed=request["seed"]):
        if token is not None:
            tokens.append(token)
        if piece:  # whole characters only: a multi-byte character may span tokens
            yield f"data: {json.dumps({'token': piece})}\n\n"
    done = {"done": True, "stop_reason": engine.stop_reason[0] if engine.stop_reason else "length",
            "dropped": dropped, "tokens": tokens}
    yield f"data: {json.dumps(done)}\n\n"


def create_app(checkpoint: str, device: str = "auto", max_concurrent: int = 2, holder: ModelHolder | None = None):
    holder = holder or ModelHolder(checkpoint, device)
    slots = asyncio.Semaphore(max_concurrent)
    app = FastAPI(title="nanochat-next", docs_url=None, redoc_url=None)

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return PAGE.read_text(encoding="utf-8")

    @app.get("/health")
    def health() -> dict:
        return {"status": holder.status, "error": holder.error, **holder.info}

    @app.post("/chat")
    async def chat(request: Request):
        from nanochat_next.tokenizer.chat_template import fit_history

        if holder.status != "ready":
            return error(503, f"the model is {holder.status}" + (f": {holder.error}" if holder.error else
                                                                 "; try again in a moment"))
        try:
            parsed = parse_request(await request.body())
        except UserError as exc:
            return error(400, str(exc))
        room = holder.model.config.sequence_len - parsed["max_tokens"]
        prompt, dropped = fit_history(parsed["messages"], holder.tokenizer, room) if room > 0 else (None, 0)
        if prompt is None:
            return error(413, f"the last message needs {dropped} tokens with the template, but the context of "
                              f"{holder.model.config.sequence_len} tokens leaves {max(room, 0)} beside max_tokens "
                              f"{parsed['max_tokens']}: shorten it or ask for fewer tokens")
        if slots.locked():
            return error(429, "the server is busy with other replies; try again shortly")
        await slots.acquire()

        async def stream() -> AsyncIterator[str]:
            try:
                async for event in iterate_in_threadpool(events(holder, parsed, prompt, dropped)):
                    yield event
            finally:
                slots.release()

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    app.state.holder, app.state.slots = holder, slots
    return app

"""``serve``: a web chat over a trained model, as nanochat's chat_web: an ASGI app (FastAPI, run by uvicorn) with
one HTML page (chat.html: no build step) and a streaming endpoint.

- ``GET /``: the page. ``GET /health``: ``{"status": "loading" | "ready" | "failed", ...}``.
- ``POST /chat`` with ``{"messages": [...], "temperature": 0.8, "top_k": 50, "max_tokens": N, "seed": 0}``:
  server-sent events, ``data: {"token": "text"}`` per piece as it is generated (a multi-byte character is
  sent whole), then ``data: {"done": true, "stop_reason": ..., "dropped": N, "tokens": [...]}``. Without
  ``max_tokens`` the reply may take half the model's context (at most 256 tokens).

What it refuses, each with a JSON ``{"error": "..."}`` and a status code before the stream starts, never a crash:
a model still loading (503), a body over 1 MB (413), bad JSON, JSON nested too deep, or bad messages (400: roles,
order, the last message must be the user's), sampling values of the wrong type or out of range (400), a last
message that alone exceeds the context (413; older turns are dropped to fit, and ``dropped`` says how many),
more than ``max_concurrent`` generations at once (429). Should anything fail once the stream has started, the
stream ends with ``data: {"error": "..."}``, not a dropped connection. The history is trimmed in a worker thread
(linear in its length), so ``/health`` answers while a long request is prepared.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from fastapi import FastAPI, Request  # the serve extra; FastAPI reads the handlers' annotations from here
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from nanochat_next.errors import UserError

PAGE = Path(__file__).with_name("chat.html")
LIMITS = {"max_tokens": (1, 4096), "top_k": (0, 100_000), "temperature": (0.0, 5.0), "seed": (0, 2**63 - 1)}
MAX_BODY = 1_000_000  # bytes: a chat request is text; more is a mistake or an attack
DEFAULT_REPLY = 256  # tokens, at most half the context (the rest is the history)


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
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)
                                                                           and not float(value).is_integer()):
        raise UserError(f"{name} must be a{'n integer' if kind is int else ' number'}, got {value!r:.40}")
    if not low <= value <= high:  # nan fails every comparison: refused too
        raise UserError(f"{name} must be between {low} and {high}, got {value!r:.40}")
    return kind(value)


def parse_request(raw: bytes, context: int) -> dict:
    """The request's messages (checked) and sampling settings; UserError says what is wrong."""
    from nanochat_next.tokenizer.chat_template import chat_messages

    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise UserError("the request body must be JSON") from None
    except RecursionError:  # json's parser recurses per nesting level: 100,000 "[" would crash it
        raise UserError("the request body is nested too deeply to be a chat request") from None
    if not isinstance(body, dict):
        raise UserError('the request body must be a JSON object {"messages": [...]}')
    messages = chat_messages(body)
    if messages[-1]["role"] != "user":
        raise UserError("the last message must be the user's: there is nothing to reply to")
    if any(not isinstance(m.get("content"), str) or not m["content"].strip() for m in messages):
        raise UserError("every message needs non-empty text content")
    return {"messages": [dict(m) for m in body["messages"]], "temperature": number(body, "temperature", 0.8, float),
            "top_k": number(body, "top_k", 50, int),
            "max_tokens": number(body, "max_tokens", min(DEFAULT_REPLY, context // 2), int),
            "seed": number(body, "seed", 0, int)}


def events(holder: ModelHolder, request: dict, prompt: list[int], dropped: int) -> Iterator[str]:
    """Server-sent events of one generation (run in a worker thread: the model computes there)."""
    from nanochat_next.infer.engine import Engine

    engine = Engine(holder.model, holder.tokenizer)
    tokens: list[int] = []
    try:
        for token, piece in engine.stream_pieces(prompt, request["max_tokens"], temperature=request["temperature"],
                                                 top_k=request["top_k"] or None, seed=request["seed"]):
            if token is not None:
                tokens.append(token)
            if piece:  # whole characters only: a multi-byte character may span tokens
                yield f"data: {json.dumps({'token': piece})}\n\n"
    except Exception as exc:  # the 200 is sent: say what went wrong in the stream, do not drop the connection
        yield f"data: {json.dumps({'error': f'generation failed: {type(exc).__name__}: {exc}'})}\n\n"
        return
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
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY:
            return error(413, f"the request body is {int(declared):,} bytes; at most {MAX_BODY:,}")
        raw = await request.body()
        if len(raw) > MAX_BODY:
            return error(413, f"the request body is {len(raw):,} bytes; at most {MAX_BODY:,}")
        context = holder.model.config.sequence_len
        try:
            parsed = parse_request(raw, context)
        except UserError as exc:
            return error(400, str(exc))
        room = context - parsed["max_tokens"]
        if room < 5:  # <|bos|> <|user_start|> a token <|user_end|> <|assistant_start|>
            return error(413, f"max_tokens {parsed['max_tokens']} leaves no room for a message in the context of "
                              f"{context} tokens; ask for at most {context - 5}")
        # tokenizing a long history takes time: in a worker thread, so the server keeps answering meanwhile
        prompt, dropped = await run_in_threadpool(fit_history, parsed["messages"], holder.tokenizer, room)
        if prompt is None:
            return error(413, f"the last message needs {dropped} tokens with the template, but the context of "
                              f"{context} tokens leaves {room} beside max_tokens {parsed['max_tokens']}: shorten it "
                              "or ask for fewer tokens")
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

"""An OpenAI-compatible chat-completions server on 127.0.0.1 with fault injection (stdlib only).

Behaviour is chosen per model name (the part after `openai/` in a LiteLLM deployment) and can be changed
while running with POST /_control:

    {"mode": "ok", "reply": "..."}           a normal answer (default)
    {"mode": "500"}                          HTTP 500
    {"mode": "429", "retry_after": 1}        HTTP 429 with Retry-After
    {"mode": "slow", "delay": 3.0}           answer after `delay` seconds
    {"mode": "ctx", "max_tokens": 50}        OpenAI's context-length error when the prompt has more words
    {"mode": "flaky", "fail_every": 2}       every n-th request fails with HTTP 500
    {"mode": "401"}                          authentication error
    {"mode": "cut"}                          a stream that sends its first word, then an error event (HTTP 200)

GET /_requests lists what was received (model, words, stream); POST /_reset clears everything.
Run standalone with `python tests/fake_provider.py PORT`.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeProvider:
    """A running fake server; `url` is the OpenAI base URL (ending in /v1)."""

    def __init__(self, port: int = 0) -> None:
        self.lock = threading.Lock()
        self.behaviour: dict[str, dict] = {}
        self.counts: dict[str, int] = {}
        self.requests: list[dict] = []
        provider = self

        class Handler(_Handler):
            fake = provider

        self.server = _Server(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def set(self, **behaviours: dict) -> None:
        with self.lock:
            self.behaviour.update(behaviours)

    def reset(self) -> None:
        with self.lock:
            self.behaviour.clear()
            self.counts.clear()
            self.requests.clear()

    def hits(self, model: str) -> int:
        with self.lock:
            return sum(1 for r in self.requests if r["model"] == model)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    """socketserver listens with a backlog of 5: 200 requests at once on a loaded machine overflowed it, and the
    connections it dropped fell back to the next pool without reaching this one (a real server listens with
    hundreds: uvicorn 2048)."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # without it keep-alive clients stall 40 ms on delayed ACKs
    fake: FakeProvider

    def log_message(self, *args) -> None:
        pass

    def _send(self, code: int, body: dict, headers: dict | None = None) -> None:
        raw = json.dumps(body).encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            for k, v in (headers or {}).items():
                self.send_header(k, str(v))
            self.end_headers()
            self.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
            self.close_connection = True

    def _error(self, code: int, message: str, etype: str, ecode: str | None = None, headers=None) -> None:
        self._send(code, {"error": {"message": message, "type": etype, "param": None, "code": ecode}}, headers)

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/_requests":
            with self.fake.lock:
                return self._send(200, {"requests": list(self.fake.requests)})
        if self.path.rstrip("/").endswith("/models"):
            return self._send(
                200, {"object": "list", "data": [{"id": m, "object": "model"} for m in self.fake.behaviour]}
            )
        return self._send(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        path = self.path.rstrip("/")
        if path == "/_control":
            self.fake.set(**body)
            return self._send(200, {"ok": True})
        if path == "/_reset":
            self.fake.reset()
            return self._send(200, {"ok": True})
        if path.endswith("/chat/completions"):
            return self._chat(body)
        return self._send(404, {"error": {"message": f"no route {path}"}})

    def _chat(self, body: dict) -> None:
        model = body.get("model", "?")
        text = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
        words = max(1, len(text.split()))
        with self.fake.lock:
            self.fake.counts[model] = count = self.fake.counts.get(model, 0) + 1
            beh = dict(self.fake.behaviour.get(model, {"mode": "ok"}))
            self.fake.requests.append(
                {
                    "model": model,
                    "words": words,
                    "stream": bool(body.get("stream")),
                    "t": time.time(),
                    "roles": [m.get("role") for m in body.get("messages", [])],
                }
            )
        mode = beh.get("mode", "ok")
        if mode == "flaky" and count % int(beh.get("fail_every", 2)) == 0:
            mode = "500"
        if mode == "500":
            return self._error(500, "injected server error", "server_error")
        if mode == "401":
            return self._error(401, "Incorrect API key provided", "invalid_request_error", "invalid_api_key")
        if mode == "429":
            return self._error(
                429,
                "Rate limit reached (injected)",
                "requests",
                "rate_limit_exceeded",
                {"retry-after": beh.get("retry_after", 1)},
            )
        if mode == "slow":
            time.sleep(float(beh.get("delay", 3.0)))
        if mode == "ctx" and words > int(beh.get("max_tokens", 50)):
            limit = int(beh.get("max_tokens", 50))
            return self._error(
                400,
                f"This model's maximum context length is {limit} tokens. However, your messages "
                f"resulted in {words} tokens. Please reduce the length of the messages.",
                "invalid_request_error",
                "context_length_exceeded",
            )
        reply = beh.get("reply", f"[{model}] ok")
        usage = {
            "prompt_tokens": words,
            "completion_tokens": len(reply.split()),
            "total_tokens": words + len(reply.split()),
        }
        if body.get("stream"):
            return self._stream(model, reply, usage, body, cut=mode == "cut")
        self._send(
            200,
            {
                "id": "chatcmpl-" + uuid.uuid4().hex[:12],
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
                "usage": usage,
            },
        )

    def _stream(self, model: str, reply: str, usage: dict, body: dict, *, cut: bool = False) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        cid = "chatcmpl-" + uuid.uuid4().hex[:12]

        def chunk(delta: dict, finish: str | None = None, **extra) -> bytes:
            obj = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                **extra,
            }
            return f"data: {json.dumps(obj)}\n\n".encode()

        for i, word in enumerate(reply.split(" ")):
            self.wfile.write(chunk({"role": "assistant", "content": word} if i == 0 else {"content": " " + word}))
            if cut:  # the upstream fails mid-stream: OpenAI's SSE error event
                error = {"message": "upstream died mid-stream", "type": "server_error", "code": "server_error"}
                self.wfile.write(f"data: {json.dumps({'error': error})}\n\n".encode())
                return
        self.wfile.write(chunk({}, "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            obj = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [],
                "usage": usage,
            }
            self.wfile.write(f"data: {json.dumps(obj)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True


def control(base_url: str, **behaviours: dict) -> None:
    """Set behaviours on a fake provider running in another process."""
    root = base_url.rsplit("/v1", 1)[0]
    req = urllib.request.Request(
        root + "/_control",
        data=json.dumps(behaviours).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    urllib.request.urlopen(req, timeout=5).read()


if __name__ == "__main__":
    import sys

    fake = FakeProvider(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    print(fake.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.close()

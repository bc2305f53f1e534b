"""A small OpenAI-compatible HTTP server for tests and benchmarks (127.0.0.1 only).

Serves ``POST /v1/chat/completions`` and ``POST /v1/completions`` with
deterministic text, ``usage`` token counts, and knobs the tests turn:

- ``latency``: seconds from a request's arrival to its answer;
- ``fail_rate``: share of requests answered with HTTP 500;
- ``rate_limit_every``: every n-th request gets HTTP 429 (with Retry-After: 0);
- ``fail_marker``: prompts containing it always get HTTP 500;
- ``empty_marker``: prompts containing it get ``"content": null`` (which
  distilabel's OpenAILLM turns into a ``None`` generation);
- ``bad_request_marker``: prompts containing it always get HTTP 400;
- ``mode``: every completion request misbehaves one way: ``"401"``, ``"429"``
  (with ``Retry-After: retry_after``), ``"500"``, ``"garbage"`` (200 with a
  body that is not JSON), ``"empty_choices"`` (200 with ``choices: []``),
  ``"hang"`` (never answers until the server stops) or ``"echo_auth"`` (401
  whose message repeats the request's Authorization header, as some proxies do).
- ``hold_after``: requests after the n-th are held unanswered (``held`` counts them) until
  ``configure(hold_after=None)``, ``reset()`` or ``stop()``: a test can stop a client at an exact point.
- ``replies``: ``{substring: reply}``; a prompt containing a substring (first match in order) is answered
  with that reply instead of the default text (``{"@model": {substring: reply}}``: only for requests
  naming that model). A reply is a text, or ``{"text": ..., "first": {token:
  logprob}}`` whose ``first`` gives the alternatives (log-probabilities) served for the first answer token.
- log-probabilities: a chat request with ``logprobs: true`` (and ``top_logprobs: n``) or a completions request
  with ``logprobs: n`` gets them, in OpenAI's shape: every word of the answer is a token with probability
  0.75, followed by filler alternatives; a reply's ``first`` replaces the first token's alternatives.

It counts requests (total, per status, per prompt text). In-process use:
``with LLMServer(latency=0.01) as srv: srv.url``. As a process (benchmarks):
``python tests/generation/llm_server.py --port 0 --latency 0.05`` prints the
URL on its first line; ``GET /stats`` returns the counters and
``POST /config`` changes the knobs.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the openai client reuses connections
    disable_nagle_algorithm = True  # else headers and body in two writes wait ~40 ms for a delayed ACK
    server: _Server

    def log_message(self, *args):  # quiet
        pass

    def _send(self, status: int, body: dict | bytes, headers: dict | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.rstrip("/") == "/stats":
            self._send(200, self.server.owner.stats())
        elif self.path.rstrip("/") == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": "test-model", "object": "model"}]})
        else:
            self._send(404, {"error": {"message": "not found"}})

    def do_POST(self):
        received = time.monotonic()
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self._send(400, {"error": {"message": "invalid JSON"}})
            return
        owner: LLMServer = self.server.owner
        path = self.path.rstrip("/")
        if path == "/config":
            owner.configure(**body)
            self._send(200, {"ok": True})
            return
        if path == "/reset":
            owner.reset()
            self._send(200, {"ok": True})
            return
        if path not in ("/v1/chat/completions", "/v1/completions"):
            self._send(404, {"error": {"message": f"unknown path {self.path}"}})
            return
        chat = path.endswith("chat/completions")
        if chat:
            messages = body.get("messages") or []
            prompt = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), "") or ""
            system = next((m.get("content") for m in messages if m.get("role") == "system"), "") or ""
        else:
            prompt, system = str(body.get("prompt") or ""), ""
        owner.last_authorization = self.headers.get("Authorization")
        status, payload, headers = owner.answer(prompt, system, body, chat, received)
        self._send(status, payload, headers)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # a client that gave up (timeout) is not news
        pass
    allow_reuse_address = True
    request_queue_size = 256
    owner: LLMServer


class LLMServer:
    def __init__(self, port: int = 0, latency: float = 0.0, fail_rate: float = 0.0, rate_limit_every: int = 0,
                 fail_marker: str | None = None, empty_marker: str | None = None,
                 bad_request_marker: str | None = None, seed: int = 0, mode: str | None = None,
                 retry_after: float = 0):
        self.port = port
        self.lock = threading.Lock()
        self.random = random.Random(seed)
        self._release = threading.Event()
        self.hold_after: int | None = None
        self.replies: dict = {}
        self.held = 0
        self.configure(latency=latency, fail_rate=fail_rate, rate_limit_every=rate_limit_every,
                       fail_marker=fail_marker, empty_marker=empty_marker, bad_request_marker=bad_request_marker,
                       mode=mode, retry_after=retry_after)
        self.last_authorization: str | None = None
        self.released = threading.Event()  # set by stop(): "hang" requests return then
        self.reset()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------- control
    def configure(self, **knobs) -> None:
        for k, v in knobs.items():
            if k not in ("latency", "fail_rate", "rate_limit_every", "fail_marker", "empty_marker",
                         "bad_request_marker", "mode", "retry_after", "hold_after", "replies"):
                raise ValueError(f"unknown knob {k}")
            setattr(self, k, v)
        if knobs.get("hold_after", 0) is None:
            self._release.set()

    def reset(self) -> None:
        self._release.set()
        self.hold_after = None
        with self.lock:
            self.held = 0
            self.requests = 0
            self.by_status: Counter = Counter()
            self.by_prompt: Counter = Counter()
            self.max_in_flight = 0
            self._in_flight = 0

    def stats(self) -> dict:
        with self.lock:
            return {"requests": self.requests, "by_status": dict(self.by_status),
                    "by_prompt": dict(self.by_prompt), "max_in_flight": self.max_in_flight}

    @property
    def ok_requests(self) -> int:
        return self.by_status.get(200, 0)

    # -------------------------------------------------------------- answer
    def answer(self, prompt: str, system: str, body: dict, chat: bool, received: float | None = None
               ) -> tuple[int, dict, dict]:
        with self.lock:
            self.requests += 1
            n = self.requests
            self.by_prompt[prompt] += 1
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            fail = self.fail_rate and self.random.random() < self.fail_rate
            hold = self.hold_after is not None and n > self.hold_after
            if hold:
                self.held += 1
                self._release.clear()
        try:
            if hold:
                self._release.wait()
            if self.latency:  # answer `latency` seconds after the request arrived
                time.sleep(max(0.0, self.latency - (time.monotonic() - (received or time.monotonic()))))
            status, payload, headers = 200, None, {}
            if self.mode:
                status, payload, headers = self._misbehave()
            elif self.bad_request_marker and self.bad_request_marker in prompt:
                status, payload = 400, {"error": {"message": "the server refuses this prompt", "type": "invalid"}}
            elif self.rate_limit_every and n % self.rate_limit_every == 0:
                status, payload, headers = 429, {"error": {"message": "slow down", "type": "rate_limit"}}, \
                    {"Retry-After": "0"}
            elif fail or (self.fail_marker and self.fail_marker in prompt):
                status, payload = 500, {"error": {"message": "internal error (test server)", "type": "server"}}
            if payload is None:
                empty = bool(self.empty_marker and self.empty_marker in prompt)
                payload = self._completion(prompt, system, body, chat, empty, self._reply(prompt, body.get("model")))
            with self.lock:
                self.by_status[status] += 1
            return status, payload, headers
        finally:
            with self.lock:
                self._in_flight -= 1

    def _misbehave(self) -> tuple[int, dict | bytes, dict]:
        mode = self.mode
        if mode == "401":
            return 401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}, {}
        if mode == "echo_auth":
            return 401, {"error": {"message": f"invalid credentials in 'Authorization: {self.last_authorization}'",
                                   "type": "invalid_request_error"}}, {}
        if mode == "429":
            return 429, {"error": {"message": "slow down", "type": "rate_limit"}}, \
                {"Retry-After": str(self.retry_after)}
        if mode == "500":
            return 500, {"error": {"message": "internal error (test server)", "type": "server"}}, {}
        if mode == "garbage":
            return 200, b"<html>not json at all", {}
        if mode == "empty_choices":
            return 200, {"id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()),
                         "model": "test-model", "choices": [], "usage": None}, {}
        if mode == "hang":
            self.released.wait(120)
            return 500, {"error": {"message": "server stopped"}}, {}
        raise ValueError(f"unknown mode {mode}")

    def _reply(self, prompt: str, model: str | None, replies: dict | None = None):
        for marker, reply in (self.replies if replies is None else replies or {}).items():
            if marker.startswith("@"):  # {"@model": {substring: reply}}: only for requests naming that model
                got = self._reply(prompt, model, reply) if marker[1:] == model else None
                if got is not None:
                    return got
            elif marker in prompt:
                return reply
        return None

    @staticmethod
    def _completion(prompt: str, system: str, body: dict, chat: bool, empty: bool, reply=None) -> dict:
        temp = body.get("temperature")
        first = None
        if reply is not None:
            text, first = (reply.get("text", ""), reply.get("first")) if isinstance(reply, dict) else (reply, None)
        else:
            text = f"a haiku on: {prompt[:60]}\nwritten at temperature {temp}\nby the test server"
        max_tokens = body.get("max_tokens") or 128
        words = text.split()[: max(1, int(max_tokens))]
        text = " ".join(words) if len(words) < len(text.split()) else text
        in_tokens = len((system + " " + prompt).split())
        out_tokens = 0 if empty else len(text.split())
        usage = {"prompt_tokens": in_tokens, "completion_tokens": out_tokens, "total_tokens": in_tokens + out_tokens}
        created = int(time.time())
        model = body.get("model") or "test-model"
        top = body.get("top_logprobs") if chat else body.get("logprobs")
        wants = (body.get("logprobs") is True) if chat else isinstance(top, int)
        positions = _logprobs(text, first, int(top or 1)) if wants and not empty else None
        if chat:
            lp = None if positions is None else {"refusal": None, "content": [
                {"token": tok, "logprob": alts[tok], "bytes": None,
                 "top_logprobs": [{"token": t, "logprob": v, "bytes": None} for t, v in alts.items()]}
                for tok, alts in positions]}
            choice = {"index": 0, "finish_reason": "content_filter" if empty else "stop", "logprobs": lp,
                      "message": {"role": "assistant", "content": None if empty else text}}
            return {"id": "chatcmpl-test", "object": "chat.completion", "created": created, "model": model,
                    "choices": [choice], "usage": usage}
        lp = None if positions is None else {
            "tokens": [tok for tok, _ in positions], "token_logprobs": [alts[tok] for tok, alts in positions],
            "top_logprobs": [alts for _, alts in positions], "text_offset": [0 for _ in positions]}
        choice = {"index": 0, "finish_reason": "stop", "logprobs": lp, "text": "" if empty else text}
        return {"id": "cmpl-test", "object": "text_completion", "created": created, "model": model,
                "choices": [choice], "usage": usage}

    # ----------------------------------------------------------- lifecycle
    def start(self) -> LLMServer:
        self._httpd = _Server(("127.0.0.1", self.port), _Handler)
        self._httpd.owner = self
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.released.set()
        self._release.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> LLMServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _logprobs(text: str, first: dict | None, top: int) -> list[tuple[str, dict]]:
    """Per answer word: (the chosen token, its alternatives {token: logprob}, most likely first). An answer with
    no word (whitespace, or the end of text at once, as a tiny model may give) still has its one position."""
    if not text.split() and first:  # the chosen token (the whitespace) has the probability left over
        rest = max(1e-6, 1.0 - sum(math.exp(v) for v in first.values()))
        alts = dict(sorted({**first, text: math.log(rest)}.items(), key=lambda kv: -kv[1])[:max(1, top)])
        return [(text, {**alts, text: math.log(rest)})]
    out = []
    for i, word in enumerate(text.split()):
        tok = word if i == 0 else " " + word
        if i == 0 and first:
            alts = dict(sorted(first.items(), key=lambda kv: -kv[1])[:max(1, top)])
            chosen = max(alts, key=alts.get)
            out.append((chosen, alts))
            continue
        alts = {tok: math.log(0.75)}
        for j in range(1, max(1, top)):
            alts[f" zz{j}"] = math.log(0.2 / (2 ** j))
        out.append((tok, alts))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency", type=float, default=0.0)
    ap.add_argument("--fail-rate", type=float, default=0.0)
    ap.add_argument("--rate-limit-every", type=int, default=0)
    args = ap.parse_args(argv)
    srv = LLMServer(args.port, args.latency, args.fail_rate, args.rate_limit_every).start()
    print(srv.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.stop()


if __name__ == "__main__":
    main(sys.argv[1:])

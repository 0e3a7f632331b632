"""A scripted OpenAI-compatible HTTP server for tests: real HTTP on 127.0.0.1, replies you control.

``ScriptedServer(handler)``: handler(body: dict, n: int) -> dict message (or an int HTTP status, or a
tuple (HTTP status, error message)).
Every request body is kept in ``.requests``; ``.max_in_flight`` records concurrency.

``together=k`` proves concurrency without timing anything: the first k requests each wait at a
``threading.Barrier(k)`` that only opens once all k are in flight at once. A client that never has k
requests open together cannot pass it: after ``wait_s`` the barrier breaks, those requests get HTTP
503 and leaving the ``with`` block fails the test with the count seen (it never hangs).

``max_model_len`` is listed by GET /v1/models (as vLLM does) when given; POST /tokenize (vLLM's route,
at the server root) then answers ``{"count", "max_model_len"}`` with a count of its own rule,
``scripted_token_count`` (one token per whitespace-separated word of the messages' contents), kept in
``.tokenize_requests`` and not in ``.requests``.

``hold_s`` keeps each request open that long. It proves nothing by itself; it is only for tests of an
upper bound (a limit can be seen broken, never proven kept, so an over-eager client needs requests
that stay open long enough to overlap). Use ``together`` to show requests do run concurrently.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ScriptedServer:
    def __init__(self, handler, model: str = "scripted-model", *, together: int = 0, wait_s: float = 60.0,
                 hold_s: float = 0.0, max_model_len: int | None = None):
        if together < 0 or wait_s <= 0 or hold_s < 0:
            raise ValueError(f"together {together!r} >= 0, wait_s {wait_s!r} > 0, hold_s {hold_s!r} >= 0 expected")
        self.handler = handler
        self.model = model
        self.together = together
        self.wait_s = wait_s
        self.hold_s = hold_s
        self.max_model_len = max_model_len
        self.requests: list[dict] = []
        self.tokenize_requests: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.barrier_error: str | None = None
        self._barrier = threading.Barrier(together, timeout=wait_s) if together > 1 else None
        self._lock = threading.Lock()
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def _send(self, code: int, obj) -> None:
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path.rstrip("/").endswith("/v1/models"):
                    m = {"id": outer.model, "object": "model"}
                    if outer.max_model_len is not None:
                        m["max_model_len"] = outer.max_model_len
                    self._send(200, {"object": "list", "data": [m]})
                else:
                    self._send(404, {"error": "not found"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                if self.path.rstrip("/") == "/tokenize":
                    if outer.max_model_len is None:
                        self._send(404, {"error": "not found"})
                        return
                    with outer._lock:
                        outer.tokenize_requests.append(body)
                    self._send(200, {"count": scripted_token_count(body["messages"]), "max_model_len": outer.max_model_len,
                                     "tokens": []})
                    return
                with outer._lock:
                    outer.requests.append(body)
                    n = len(outer.requests)
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                try:
                    if outer._barrier is not None and n <= outer.together and not outer._meet(n):
                        msg = 503
                    else:
                        if outer.hold_s:
                            time.sleep(outer.hold_s)
                        msg = outer.handler(body, n)
                finally:
                    with outer._lock:
                        outer.in_flight -= 1
                if isinstance(msg, int):
                    self._send(msg, {"error": {"message": "scripted failure"}})
                    return
                if isinstance(msg, tuple):  # (HTTP status, error message)
                    self._send(msg[0], {"error": {"message": msg[1]}})
                    return
                msg = dict(msg)
                finish = msg.pop("_finish_reason", "stop")
                self._send(200, {"id": f"c{n}", "object": "chat.completion", "model": outer.model,
                                 "choices": [{"index": 0, "message": {"role": "assistant", **msg}, "finish_reason": finish}]})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def _meet(self, n: int) -> bool:
        """Request ``n`` waits for the first ``together`` requests to be in flight at once."""
        try:
            self._barrier.wait()
            return True
        except threading.BrokenBarrierError:
            with self._lock:
                if self.barrier_error is None:
                    self.barrier_error = (f"ScriptedServer(together={self.together}): at most {self.max_in_flight} "
                                          f"request(s) were in flight at once within {self.wait_s:g} s; expected "
                                          f"{self.together} together ({len(self.requests)} received in all)")
            return False

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> ScriptedServer:  # noqa: PYI034
        self.thread.start()
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if self._barrier is not None:
            self._barrier.abort()  # nobody waits on past the block (a client that sent fewer requests)
        self.httpd.shutdown()
        self.httpd.server_close()
        if exc_type is None and self.barrier_error:
            raise AssertionError(self.barrier_error)
        if exc_type is None and self._barrier is not None and len(self.requests) < self.together:
            raise AssertionError(f"ScriptedServer(together={self.together}): only {len(self.requests)} request(s) came")


def scripted_token_count(messages: list[dict]) -> int:
    """The scripted server's tokenizer: one token per whitespace-separated word of the contents."""
    return sum(len(str(m.get("content") or "").split()) for m in messages)


def reply(obj: dict, finish_reason: str | None = None) -> dict:
    """A message whose content is ``obj`` as JSON (``finish_reason`` given: that finish reason)."""
    msg = {"content": json.dumps(obj)}
    if finish_reason:
        msg["_finish_reason"] = finish_reason
    return msg


def default_arrangement(body: dict) -> dict:
    """The arrangement a narrative prompt (reasoning.narrative.facts_prompt) offers as valid: every
    fact in the template's order, no lead-ins. A scripted model that changes nothing answers it."""
    from reasoning.narrative import DEFAULT_ANSWER_INTRO

    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    return json.loads(user.split(DEFAULT_ANSWER_INTRO, 1)[1].strip().splitlines()[0])


def echo_default(body: dict, n: int) -> dict:
    """Handler: answer every narrative request with its default arrangement."""
    return reply(default_arrangement(body))

"""A scripted OpenAI-compatible HTTP server for tests: real HTTP on 127.0.0.1, replies you control.

``ScriptedServer(handler)``: handler(body: dict, n: int) -> dict message (or an int HTTP status).
Every request body is kept in ``.requests``; ``.max_in_flight`` records concurrency.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ScriptedServer:
    def __init__(self, handler, model: str = "scripted-model", delay_s: float = 0.0):
        self.handler = handler
        self.model = model
        self.delay_s = delay_s
        self.requests: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
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
                    self._send(200, {"object": "list", "data": [{"id": outer.model, "object": "model"}]})
                else:
                    self._send(404, {"error": "not found"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with outer._lock:
                    outer.requests.append(body)
                    n = len(outer.requests)
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                try:
                    if outer.delay_s:
                        time.sleep(outer.delay_s)
                    msg = outer.handler(body, n)
                finally:
                    with outer._lock:
                        outer.in_flight -= 1
                if isinstance(msg, int):
                    self._send(msg, {"error": {"message": "scripted failure"}})
                    return
                self._send(200, {"id": f"c{n}", "object": "chat.completion", "model": outer.model,
                                 "choices": [{"index": 0, "message": {"role": "assistant", **msg}, "finish_reason": "stop"}]})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> "ScriptedServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def reply(sentences: list[dict]) -> dict:
    return {"content": json.dumps({"sentences": sentences})}

"""A local HTTP server that records the JSON POSTed to it (webhook and Slack receivers), and can
misbehave on purpose: answer with given status codes, or hold a request past the client's timeout."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class HookServer:
    """Records every POST (path, headers, JSON body). ``script``: what to do with the n-th request,
    an HTTP status or ``"hang"`` (hold the answer until the server stops); past its end, 200."""

    def __init__(self, script: tuple[int | str, ...] = ()) -> None:
        self.received: list[dict[str, Any]] = []
        self.script = list(script)
        self._release = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with lock:
                    owner.received.append({"path": self.path, "headers": dict(self.headers),
                                           "json": json.loads(body or b"null")})
                    step = owner.script.pop(0) if owner.script else 200
                if step == "hang":
                    owner._release.wait(30)
                    return
                self.send_response(int(step))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def bodies(self, path: str = "") -> list[Any]:
        return [r["json"] for r in self.received if not path or r["path"] == path]

    def stop(self) -> None:
        self._release.set()
        self._httpd.shutdown()
        self._httpd.server_close()

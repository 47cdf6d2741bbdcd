"""A reverse proxy on 127.0.0.1 that serves an upstream under a path prefix, as an Ingress
with a rewrite (``/streamrec/(.*)`` -> ``/$1``) does. For tests of relative links only."""

from __future__ import annotations

import http.server
import threading
import urllib.error
import urllib.request
from types import TracebackType

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-authorization", "proxy-authenticate", "content-length"}


class PrefixProxy:
    """``http://127.0.0.1:<port><prefix>/x`` -> ``<upstream>/x``; anything else is a 404."""

    def __init__(self, upstream: str, prefix: str = "/streamrec") -> None:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                pass

            def _forward(self) -> None:
                if not self.path.startswith(prefix + "/"):
                    self.send_error(404, "outside the prefix")
                    return
                proxy.paths.append(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                req = urllib.request.Request(upstream + self.path[len(prefix):], data=body,
                                             method=self.command)
                for name in ("Content-Type", "Authorization", "Accept"):
                    if self.headers.get(name):
                        req.add_header(name, self.headers[name])
                try:
                    resp = proxy.opener.open(req, timeout=30)
                except urllib.error.HTTPError as e:
                    resp = e
                data = resp.read()
                self.send_response(resp.status)
                for name, value in resp.headers.items():
                    if name.lower() not in HOP_BY_HOP:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _forward  # noqa: N815

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *_: object, **__: object) -> None:
                return None  # pass redirects to the browser, as a proxy does

        self.opener = urllib.request.build_opener(NoRedirect)
        self.paths: list[str] = []
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{prefix}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> PrefixProxy:
        self.thread.start()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)

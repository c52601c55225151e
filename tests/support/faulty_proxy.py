"""An HTTP proxy on 127.0.0.1 in front of the S3/SQS server that answers every Nth request with
503 SlowDown, as S3 does under load: the real protocol, no client patched."""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

SLOW_DOWN = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
             b'<Message>Please reduce your request rate.</Message></Error>')
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


class FaultyProxy:
    def __init__(self, upstream: str, every: int = 0, *, first_gets: int = 0, refuse_gets: str | None = None):
        """``every``: refuse every Nth request. ``first_gets``: refuse the first N GETs of each path
        (a burst of throttling on one object, longer than a client's default retries).
        ``refuse_gets``: refuse every GET of an object whose path starts with this (e.g. "/bucket/"),
        for as long as the attribute is set (a store that cannot serve reads; set it to None to heal);
        bucket listings ("/bucket?list-type=2…") still pass."""
        self.upstream, self.every, self.first_gets = urlsplit(upstream), every, first_gets
        self.refuse_gets = refuse_gets
        self.gets: dict[str, int] = {}
        self.requests = self.refused = 0
        self.bytes_served = 0             # response bodies passed to clients
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = b""
                    while (size := int(self.rfile.readline().split(b";")[0], 16)):
                        data += self.rfile.read(size)
                        self.rfile.readline()
                    self.rfile.readline()
                    return data
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _handle(self) -> None:
                body = self._body()
                with proxy.lock:
                    proxy.requests += 1
                    refuse = bool(proxy.every) and proxy.requests % proxy.every == 0
                    if self.command == "GET" and proxy.first_gets:
                        seen = proxy.gets[self.path] = proxy.gets.get(self.path, 0) + 1
                        refuse = refuse or seen <= proxy.first_gets
                    if self.command == "GET" and proxy.refuse_gets and self.path.startswith(proxy.refuse_gets):
                        refuse = True
                    proxy.refused += refuse
                if refuse:
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(SLOW_DOWN) if self.command != "HEAD" else 0))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(SLOW_DOWN)
                    return
                upstream = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    headers["Content-Length"] = str(len(body))
                upstream.request(self.command, self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                self.send_response(answer.status, answer.reason)
                for key, value in answer.getheaders():
                    if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)) if self.command != "HEAD"
                                 else answer.getheader("Content-Length", "0"))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                    with proxy.lock:
                        proxy.bytes_served += len(data)
                upstream.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

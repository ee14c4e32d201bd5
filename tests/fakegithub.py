"""A local stand-in for the GitHub REST API endpoints replaygate uses (issues and their
comments), recording every request so tests can assert both the calls and the bodies.

    with FakeGitHub(token="t0k") as gh:      # gh.api_url -> http://127.0.0.1:PORT
        ...; gh.requests, gh.comments[PR], gh.issues

Lists are paginated with `per_page` and a `Link: <...>; rel="next"` header, as GitHub does.
`read_only=True` answers writes with 403 "Resource not accessible by integration", as a fork's
pull-request token gets.
"""
from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class FakeGitHub:
    def __init__(self, token: str = "ghs_test", repo: str = "acme/shop", read_only: bool = False):
        self.token, self.repo, self.read_only = token, repo, read_only
        self.requests: list[dict] = []
        self.comments: dict[int, list[dict]] = {}
        self.issues: list[dict] = []
        self._next_id = 1000
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.api_url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self):
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def writes(self) -> list[dict]:
        return [r for r in self.requests if r["method"] in ("POST", "PATCH")]

    def _handler(self):
        gh = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def _reply(self, status: int, body, headers: dict | None = None):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str):
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                with gh._lock:
                    gh.requests.append({"method": method, "path": url.path, "query": query, "body": body,
                                        "auth": self.headers.get("Authorization"),
                                        "accept": self.headers.get("Accept")})
                    if self.headers.get("Authorization") != f"Bearer {gh.token}":
                        return self._reply(401, {"message": "Bad credentials"})
                    if method in ("POST", "PATCH") and gh.read_only:
                        return self._reply(403, {"message": "Resource not accessible by integration"})
                    return self._route(method, url.path, query, body)

            def _page(self, items, path, query):
                per, page = int(query.get("per_page", 30)), int(query.get("page", 1))
                chunk = items[(page - 1) * per: page * per]
                headers = {}
                if page * per < len(items):
                    rest = "&".join(f"{k}={v}" for k, v in {**query, "page": page + 1}.items())
                    headers["Link"] = f'<{gh.api_url}{path}?{rest}>; rel="next"'
                return self._reply(200, chunk, headers)

            def _route(self, method, path, query, body):
                base = f"/repos/{gh.repo}/issues"
                m = re.fullmatch(rf"{base}/(\d+)/comments", path)
                if m:
                    n = int(m.group(1))
                    if method == "GET":
                        return self._page(gh.comments.get(n, []), path, query)
                    c = {"id": gh.new_id(), "body": body["body"], "html_url": f"https://github.test/{gh.repo}/pull/{n}#c"}
                    gh.comments.setdefault(n, []).append(c)
                    return self._reply(201, c)
                m = re.fullmatch(rf"{base}/comments/(\d+)", path)
                if m and method == "PATCH":
                    cid = int(m.group(1))
                    for cs in gh.comments.values():
                        for c in cs:
                            if c["id"] == cid:
                                c["body"] = body["body"]
                                return self._reply(200, c)
                    return self._reply(404, {"message": "Not Found"})
                if path == base:
                    if method == "GET":
                        items = [i for i in gh.issues if query.get("state", "open") in (i["state"], "all")]
                        return self._page(items, path, query)
                    i = {"number": len(gh.issues) + 1, "state": "open", **body,
                         "html_url": f"https://github.test/{gh.repo}/issues/{len(gh.issues) + 1}"}
                    gh.issues.append(i)
                    return self._reply(201, i)
                m = re.fullmatch(rf"{base}/(\d+)", path)
                if m and method == "PATCH":
                    i = gh.issues[int(m.group(1)) - 1]
                    i.update(body)
                    return self._reply(200, i)
                return self._reply(404, {"message": "Not Found"})

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

            def do_PATCH(self):
                self._handle("PATCH")

        return Handler

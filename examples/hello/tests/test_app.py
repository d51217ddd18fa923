"""Unit tests of hello, run by `kiln test` inside the built artifact (`python -m unittest`).

They start the app's handler on a free loopback port in this process and talk
to it over HTTP, so they need nothing but the artifact's own files and deps.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import unittest
from http.server import ThreadingHTTPServer

os.environ.setdefault("APP_VERSION", "1.2.3")

import app


class HelloTest(unittest.TestCase):
    def setUp(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), app.Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def tearDown(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def get(self, path: str) -> tuple[int, dict[str, object]]:
        host, port = self.server.server_address[:2]
        conn = http.client.HTTPConnection(str(host), int(port), timeout=5)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, json.loads(response.read())
        finally:
            conn.close()

    def test_ready(self) -> None:
        status, body = self.get("/healthz")
        self.assertEqual(status, 200)
        self.assertEqual(body, {"ready": True})

    def test_reports_its_version(self) -> None:
        status, body = self.get("/")
        self.assertEqual(status, 200)
        self.assertEqual(body["version"], app.VERSION)
        self.assertEqual(body["path"], "/")


if __name__ == "__main__":
    unittest.main()

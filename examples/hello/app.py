"""hello: the small, real web service kiln's demo and tests deploy.

Endpoints:
  /         JSON with the version and the instance id
  /healthz  200 when ready

Behaviour comes from config (environment variables), so a "bad release" needs
no code change:
  PORT               port to listen on (kiln sets it)           default 8000
  HOST               address to bind                            default 127.0.0.1
  APP_VERSION        version reported by /                      default 0.0.0
  ERROR_RATE         fraction of / requests answered with 500   default 0
  EXTRA_LATENCY_MS   added latency on / in milliseconds         default 0
  STARTUP_DELAY_MS   time before /healthz turns 200             default 0

Socket activation: when LISTEN_FDS is set and LISTEN_PID is this process
(systemd's convention, which kiln's network-isolated sandbox follows), hello
serves on the listening socket it was given as fd 3 instead of binding PORT.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from packaging.version import Version

VERSION = str(Version(os.environ.get("APP_VERSION", "0.0.0")))
INSTANCE = os.environ.get("KILN_INSTANCE_ID", f"local-{os.getpid()}")
ERROR_RATE = float(os.environ.get("ERROR_RATE", "0"))
LATENCY = float(os.environ.get("EXTRA_LATENCY_MS", "0")) / 1000.0
READY_AT = time.monotonic() + float(os.environ.get("STARTUP_DELAY_MS", "0")) / 1000.0
# Graceful stop: requests already being handled when SIGTERM arrives finish first.
IN_FLIGHT = 0
IN_FLIGHT_LOCK = threading.Lock()
STOPPING = threading.Event()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hello"

    def do_GET(self) -> None:
        global IN_FLIGHT
        with IN_FLIGHT_LOCK:
            IN_FLIGHT += 1
        try:
            self._get()
        finally:
            with IN_FLIGHT_LOCK:
                IN_FLIGHT -= 1

    def _get(self) -> None:
        if self.path == "/healthz":
            ready = time.monotonic() >= READY_AT
            self._send(200 if ready else 503, {"ready": ready})
            return
        if LATENCY:
            time.sleep(LATENCY)
        if ERROR_RATE and random.random() < ERROR_RATE:
            self._send(500, {"error": "injected", "version": VERSION})
            return
        self._send(200, {"version": VERSION, "instance": INSTANCE, "path": self.path})

    def do_HEAD(self) -> None:
        self.do_GET()

    def _send(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if STOPPING.is_set():
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        if os.environ.get("ACCESS_LOG"):
            sys.stderr.write(f"{self.address_string()} {format % args}\n")


LISTEN_FDS_START = 3


def inherited_socket() -> socket.socket | None:
    """The listening socket passed in by socket activation, or None to bind PORT."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return None
    if int(os.environ.get("LISTEN_FDS", "0")) < 1:
        return None
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)  # meant for this process, not for its children
    return socket.socket(fileno=LISTEN_FDS_START)


class Server(ThreadingHTTPServer):
    # The listen backlog must hold every connect a burst of clients makes while the
    # accepting thread waits for a CPU: the default of 5 drops the rest, and each
    # dropped SYN costs its client a one-second retransmit (a latency figure of 1 s+).
    request_queue_size = 1024


def make_server() -> ThreadingHTTPServer:
    inherited = inherited_socket()
    if inherited is None:
        address = (os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8000")))
        return Server(address, Handler)
    server = Server(inherited.getsockname()[:2], Handler, bind_and_activate=False)
    server.socket.close()
    server.socket = inherited  # already bound and listening
    server.server_address = inherited.getsockname()
    server.server_name, server.server_port = str(server.server_address[0]), server.server_address[1]
    return server


def main() -> None:
    server = make_server()
    server.daemon_threads = True

    def stop(signum: int, frame: object) -> None:
        STOPPING.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    host, port = server.server_address[:2]
    print(f"hello {VERSION} ({INSTANCE}) listening on {host!s}:{port}", flush=True)
    server.serve_forever(poll_interval=0.05)  # SIGTERM is noticed within 50 ms, not 0.5 s
    server.server_close()
    while IN_FLIGHT:  # drain: handler threads finish the requests they hold
        time.sleep(0.01)


if __name__ == "__main__":
    main()

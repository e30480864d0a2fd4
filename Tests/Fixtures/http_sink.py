#!/usr/bin/python3
"""An HTTP endpoint for the HTTP transport's tests (standard library only).

    http_sink.py --port PORT --dir DIR SCENARIO

Every request is appended to DIR/requests.jsonl as {"path", "headers" (lowercased names), "body"}
before the scenario decides the response, so tests can check what arrived even when the
response is an error or never comes.

SCENARIO is ACTION[:TIMES][,ACTION...]: each ACTION answers TIMES requests (the last one answers
all the rest). ACTION is `200` (body {"id": "prov-N"}), `429` (Retry-After: 7), `503`
(Retry-After as an HTTP date 120 s ahead), any other status code (a short JSON error body),
`drop` (read the request, close the connection without a response) or `stall` (read the
request, answer nothing for a minute).
"""
import argparse
import email.utils
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Script:
    def __init__(self, text):
        self.steps = []
        for part in text.split(","):
            action, _, times = part.partition(":")
            self.steps.append([action, int(times) if times else None])
        self.lock = threading.Lock()
        self.requests = 0

    def next(self):
        with self.lock:
            self.requests += 1
            step = self.steps[0]
            if step[1] is not None:
                step[1] -= 1
                if step[1] == 0 and len(self.steps) > 1:
                    self.steps.pop(0)
            return step[0], self.requests


def make_handler(script, directory):
    log_lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse is exercised

        def log_message(self, format, *args):
            pass

        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            record = {"path": self.path,
                      "headers": {k.lower(): v for k, v in self.headers.items()},
                      "body": body.decode("utf-8", errors="replace")}
            with log_lock:
                with open(os.path.join(directory, "requests.jsonl"), "a") as f:
                    f.write(json.dumps(record) + "\n")
            action, number = script.next()
            if action == "drop":
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if action == "stall":
                time.sleep(60)
                self.close_connection = True
                return
            status = int(action)
            headers = {}
            if status == 200:
                payload = {"id": "prov-%d" % number}
            else:
                payload = {"error": "scripted %d" % status, "detail": "request %d" % number}
            if status == 429:
                headers["Retry-After"] = "7"
            if status == 503:
                headers["Retry-After"] = email.utils.formatdate(time.time() + 120, usegmt=True)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler


def main():
    # A child inherits its parent thread's blocked signals; the Swift test runner blocks SIGTERM.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("scenario")
    arguments = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", arguments.port), make_handler(Script(arguments.scenario), arguments.dir))
    # Tells the test this process owns the port (another test's server might answer on it too).
    with open(os.path.join(arguments.dir, "listening"), "w") as f:
        f.write(str(arguments.port))
    server.daemon_threads = True
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

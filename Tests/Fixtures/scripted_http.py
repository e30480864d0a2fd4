"""What the HTTP fixtures share (standard library only): the scripted answers, the request log,
the receiver's check of Seqd-Signature, and serving until the test stops the process.

SCENARIO is ACTION[:TIMES][,ACTION...]: each ACTION answers TIMES requests (the last one answers
all the rest). What an ACTION means is each fixture's own.
"""
import hashlib
import hmac
import json
import os
import signal
import threading
import time
from http.server import ThreadingHTTPServer


class Script:
    def __init__(self, text):
        self.steps = []
        for part in text.split(","):
            action, _, times = part.partition(":")
            self.steps.append([action, int(times) if times else None])
        self.lock = threading.Lock()
        self.requests = 0

    def next(self):
        """The next request's action and its number (1, 2, ...)."""
        with self.lock:
            self.requests += 1
            step = self.steps[0]
            if step[1] is not None:
                step[1] -= 1
                if step[1] == 0 and len(self.steps) > 1:
                    self.steps.pop(0)
            return step[0], self.requests


class RequestLog:
    """DIR/requests.jsonl, one JSON object per request, appended before the answer is chosen so a
    test sees what arrived even when the answer is an error or never comes."""

    def __init__(self, directory):
        self.path = os.path.join(directory, "requests.jsonl")
        self.lock = threading.Lock()

    def append(self, record):
        with self.lock:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")


def signature_valid(secret, header, body, tolerance=300):
    """The check a receiver writes from the README, not from seqd's code: t and v1 from the header,
    HMAC-SHA256 under the secret of "<t>." + raw body, compared in constant time, t within five
    minutes."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
        given = fields["v1"]
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, given)


def read_body(handler):
    return handler.rfile.read(int(handler.headers.get("Content-Length", "0")))


def stall(handler):
    """Read the request, answer nothing for a minute."""
    time.sleep(60)
    handler.close_connection = True


def send_json(handler, status, payload, headers=None):
    data = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(data)


def serve(port, directory, handler):
    """Serves until SIGTERM/SIGINT; DIR/listening tells the test this process owns the port
    (another test's server might answer on it too)."""
    # A child inherits its parent thread's blocked signals; the Swift test runner blocks SIGTERM.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    with open(os.path.join(directory, "listening"), "w") as f:
        f.write(str(port))
    server.daemon_threads = True
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass

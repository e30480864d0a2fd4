#!/usr/bin/python3
"""An event webhook receiver for the event webhook tests (standard library only).

    event_receiver.py --port PORT --dir DIR --secret SECRET SCENARIO

It checks each request's Seqd-Signature the way the README tells a receiver to, written from the
README and not from seqd's code, and appends what it got to DIR/requests.jsonl:
{"id" (Seqd-Event-Id), "idempotency_key", "type" (Seqd-Event-Type), "content_type", "verified",
"status" (what it answered), "body"}.

SCENARIO is ACTION[:TIMES][,ACTION...]: each ACTION answers TIMES requests (the last one answers
all the rest). ACTION is `200`, `503` (with Retry-After: 1), or `stall` (record the request, then
answer nothing for a minute). A request whose signature does not verify is answered 400 whatever
the scenario.
"""
import argparse
import hashlib
import hmac
import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def verify(secret, header, body, tolerance=300):
    """The README's check: t and v1 from the header, HMAC-SHA256 of "<t>." + raw body, constant-time."""
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


class Script:
    def __init__(self, text):
        self.steps = []
        for part in text.split(","):
            action, _, times = part.partition(":")
            self.steps.append([action, int(times) if times else None])
        self.lock = threading.Lock()

    def next(self):
        with self.lock:
            step = self.steps[0]
            if step[1] is not None:
                step[1] -= 1
                if step[1] == 0 and len(self.steps) > 1:
                    self.steps.pop(0)
            return step[0]


def make_handler(script, directory, secret):
    log_lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):
            pass

        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            verified = verify(secret, self.headers.get("Seqd-Signature", ""), body)
            action = script.next()
            status = 0 if action == "stall" else int(action) if verified else 400
            record = {"id": self.headers.get("Seqd-Event-Id"),
                      "idempotency_key": self.headers.get("Idempotency-Key"),
                      "type": self.headers.get("Seqd-Event-Type"),
                      "content_type": self.headers.get("Content-Type"),
                      "path": self.path, "verified": verified, "status": status,
                      "body": body.decode("utf-8", errors="replace")}
            with log_lock:
                with open(os.path.join(directory, "requests.jsonl"), "a") as f:
                    f.write(json.dumps(record) + "\n")
            if action == "stall":
                time.sleep(60)
                self.close_connection = True
                return
            data = b'{"ok": true}' if status == 200 else b'{"error": "try later"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == 503:
                self.send_header("Retry-After", "1")
            self.end_headers()
            self.wfile.write(data)

    return Handler


def main():
    # A child inherits its parent thread's blocked signals; the Swift test runner blocks SIGTERM.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("scenario")
    arguments = parser.parse_args()
    handler = make_handler(Script(arguments.scenario), arguments.dir, arguments.secret)
    server = ThreadingHTTPServer(("127.0.0.1", arguments.port), handler)
    with open(os.path.join(arguments.dir, "listening"), "w") as f:
        f.write(str(arguments.port))
    server.daemon_threads = True
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

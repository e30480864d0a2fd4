#!/usr/bin/python3
"""A webhook receiver for the webhook-step tests (standard library only), written from the README's
description of a webhook request, not from seqd's code.

    webhook_receiver.py --port PORT --dir DIR --secret SECRET [--responses FILE] SCENARIO

Every request (any method) is appended to DIR/requests.jsonl as {"method", "path", "headers"
(lowercased names), "body", "signature_valid"} before the scenario decides the response.
`signature_valid` is this receiver's own check of `Seqd-Signature` as the README documents it:
`t=<unix seconds>,v1=<hex HMAC-SHA256 under the webhook secret of "<t>." + raw body>`, compared in
constant time, timestamp within five minutes.

SCENARIO is ACTION[:TIMES][,ACTION...] as in http_sink.py: `200` answers with the JSON that
FILE maps the request body's "name" field to (`{}` when none), `429` sends Retry-After: 1, any
other number is that status with a short JSON error, `stall` reads the request and answers
nothing for a minute.
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


def signature_valid(secret: str, header: str, body: bytes) -> bool:
    """The verification a receiver writes from the documentation."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = fields["t"]
        expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, fields["v1"]) and abs(time.time() - int(timestamp)) <= 300
    except (KeyError, ValueError):
        return False


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


def make_handler(script, directory, secret, responses):
    log_lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):
            pass

        def handle_any(self):
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            record = {"method": self.command, "path": self.path,
                      "headers": {k.lower(): v for k, v in self.headers.items()},
                      "body": body.decode("utf-8", errors="replace"),
                      "signature_valid": signature_valid(secret, self.headers.get("Seqd-Signature", ""), body)}
            with log_lock:
                with open(os.path.join(directory, "requests.jsonl"), "a") as f:
                    f.write(json.dumps(record) + "\n")
            action = script.next()
            if action == "stall":
                time.sleep(60)
                self.close_connection = True
                return
            status = int(action)
            headers = {}
            if status == 200:
                try:
                    name = json.loads(body or b"{}").get("name")
                except (ValueError, AttributeError):
                    name = None
                payload = responses.get(name, {})
            else:
                payload = {"error": "scripted %d" % status}
            if status == 429:
                headers["Retry-After"] = "1"
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        do_POST = do_PUT = do_PATCH = do_DELETE = do_GET = handle_any

    return Handler


def main():
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--responses")
    parser.add_argument("scenario")
    arguments = parser.parse_args()
    responses = {}
    if arguments.responses:
        with open(arguments.responses) as f:
            responses = json.load(f)
    handler = make_handler(Script(arguments.scenario), arguments.dir, arguments.secret, responses)
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

#!/usr/bin/python3
"""An event webhook receiver for the event webhook tests (standard library only).

    event_receiver.py --port PORT --dir DIR --secret SECRET SCENARIO

It checks each request's Seqd-Signature the way the README tells a receiver to (scripted_http.py),
and appends what it got to DIR/requests.jsonl: {"id" (Seqd-Event-Id), "idempotency_key", "type"
(Seqd-Event-Type), "content_type", "path", "verified", "status" (what it answered), "body"}.

SCENARIO (see scripted_http.py): ACTION is `200`, `503` (with Retry-After: 1), or `stall` (record
the request, then answer nothing for a minute). A request whose signature does not verify is
answered 400 whatever the scenario.
"""
import argparse
from http.server import BaseHTTPRequestHandler

from scripted_http import RequestLog, Script, read_body, send_json, serve, signature_valid, stall


def make_handler(script, log, secret):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):
            pass

        def do_POST(self):
            body = read_body(self)
            verified = signature_valid(secret, self.headers.get("Seqd-Signature", ""), body)
            action, _ = script.next()
            status = 0 if action == "stall" else int(action) if verified else 400
            log.append({"id": self.headers.get("Seqd-Event-Id"),
                        "idempotency_key": self.headers.get("Idempotency-Key"),
                        "type": self.headers.get("Seqd-Event-Type"),
                        "content_type": self.headers.get("Content-Type"),
                        "path": self.path, "verified": verified, "status": status,
                        "body": body.decode("utf-8", errors="replace")})
            if action == "stall":
                return stall(self)
            send_json(self, status, {"ok": True} if status == 200 else {"error": "try later"},
                      {"Retry-After": "1"} if status == 503 else None)

    return Handler


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("scenario")
    arguments = parser.parse_args()
    serve(arguments.port, arguments.dir,
          make_handler(Script(arguments.scenario), RequestLog(arguments.dir), arguments.secret))


if __name__ == "__main__":
    main()

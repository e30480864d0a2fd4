#!/usr/bin/python3
"""A webhook receiver for the webhook-step tests (standard library only), written from the README's
description of a webhook request, not from seqd's code.

    webhook_receiver.py --port PORT --dir DIR --secret SECRET [--responses FILE] SCENARIO

Every request (any method) is appended to DIR/requests.jsonl as {"method", "path", "headers"
(lowercased names), "body", "signature_valid"} before the scenario decides the response.
`signature_valid` is the receiver's own check of `Seqd-Signature` as the README documents it
(scripted_http.py).

SCENARIO (see scripted_http.py): `200` answers with the JSON that FILE maps the request body's
"name" field to (`{}` when none), `429` sends Retry-After: 1, any other number is that status with
a short JSON error, `stall` reads the request and answers nothing for a minute.
"""
import argparse
import json
from http.server import BaseHTTPRequestHandler

from scripted_http import RequestLog, Script, read_body, send_json, serve, signature_valid, stall


def make_handler(script, log, secret, responses):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):
            pass

        def handle_any(self):
            body = read_body(self)
            log.append({"method": self.command, "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body.decode("utf-8", errors="replace"),
                        "signature_valid": signature_valid(secret, self.headers.get("Seqd-Signature", ""), body)})
            action, _ = script.next()
            if action == "stall":
                return stall(self)
            status = int(action)
            if status == 200:
                try:
                    name = json.loads(body or b"{}").get("name")
                except (ValueError, AttributeError):
                    name = None
                payload = responses.get(name, {})
            else:
                payload = {"error": "scripted %d" % status}
            send_json(self, status, payload, {"Retry-After": "1"} if status == 429 else None)

        do_POST = do_PUT = do_PATCH = do_DELETE = do_GET = handle_any

    return Handler


def main():
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
    serve(arguments.port, arguments.dir,
          make_handler(Script(arguments.scenario), RequestLog(arguments.dir), arguments.secret, responses))


if __name__ == "__main__":
    main()

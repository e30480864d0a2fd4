#!/usr/bin/python3
"""An HTTP endpoint for the HTTP transport's tests (standard library only).

    http_sink.py --port PORT --dir DIR SCENARIO

Every request is appended to DIR/requests.jsonl as {"path", "headers" (lowercased names), "body"}
before the scenario decides the response, so tests can check what arrived even when the
response is an error or never comes.

SCENARIO (see scripted_http.py): ACTION is `200` (body {"id": "prov-N"}), `429` (Retry-After: 7),
`503` (Retry-After as an HTTP date 120 s ahead), any other status code (a short JSON error body),
`drop` (read the request, close the connection without a response) or `stall` (read the request,
answer nothing for a minute).
"""
import argparse
import email.utils
import time
from http.server import BaseHTTPRequestHandler

from scripted_http import RequestLog, Script, read_body, send_json, serve, stall


def make_handler(script, log):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse is exercised

        def log_message(self, format, *args):
            pass

        def do_POST(self):
            body = read_body(self)
            log.append({"path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body.decode("utf-8", errors="replace")})
            action, number = script.next()
            if action == "drop":
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if action == "stall":
                return stall(self)
            status = int(action)
            headers = {}
            if status == 429:
                headers["Retry-After"] = "7"
            if status == 503:
                headers["Retry-After"] = email.utils.formatdate(time.time() + 120, usegmt=True)
            payload = {"id": "prov-%d" % number} if status == 200 else {"error": "scripted %d" % status, "detail": "request %d" % number}
            send_json(self, status, payload, headers)

    return Handler


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("scenario")
    arguments = parser.parse_args()
    serve(arguments.port, arguments.dir, make_handler(Script(arguments.scenario), RequestLog(arguments.dir)))


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""A scriptable SMTP server for the SMTP transport's tests (aiosmtpd; run with Debian's /usr/bin/python3).

    smtp_server.py --port PORT --dir DIR [--auth USER:PASSWORD] SCENARIO

Every message accepted, or received before a scripted failure after DATA, is written to
DIR/msg-NNNN.eml exactly as it arrived (dot-unstuffed, CRLF kept) with its envelope in
DIR/msg-NNNN.json. DIR/connections holds how many SMTP sessions greeted the server (EHLO/HELO), so
a test can tell whether the client reused its connection; a bare TCP probe is not counted.

SCENARIO is `accept` or STAGE:ACTION[:TIMES], STAGE being `mail`, `rcpt` or `data` (the reply to
the message data), ACTION being a reply such as "451 4.3.0 try later", `drop` (close the connection
without replying) or `stall` (reply only after a minute). TIMES limits the fault to the first TIMES
commands of that stage, across connections; after that the server accepts.
SCENARIO `mixed` picks the fault by recipient, for load tests: a local part starting with `perm`
gets "550 5.1.1" at RCPT every time; `temp` gets "451 4.3.0" at RCPT the first time; `drop` has
the connection closed after its first message data; `stall` gets no reply to its first message data
for a minute; anything else is accepted.
With --self-signed-tls the server offers STARTTLS with a fresh self-signed certificate (made
with the openssl command), which a verifying client must refuse.
With --delay SECONDS the server waits that long before answering each message's data, like a
relay that takes its time to accept (a message is on the wire, unanswered, meanwhile).
With --auth the server advertises AUTH LOGIN/PLAIN over plain text and requires it, accepting only
that user and password (anything else gets aiosmtpd's 535 5.7.8).
"""
import argparse
import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys

from aiosmtpd.smtp import SMTP, AuthResult

STALL_SECONDS = 60


def write_atomically(path, data):
    temporary = path + ".tmp"
    with open(temporary, "wb") as f:
        f.write(data)
    os.replace(temporary, path)


class Handler:
    def __init__(self, directory, stage, action, times, delay=0.0):
        self.directory = directory
        self.delay = delay
        self.stage = stage
        self.action = action
        self.remaining = times
        self.connections = 0
        self.messages = 0
        # `mixed`: recipients whose one-time fault has been served.
        self.served = set()

    async def mixed_fault(self, stage, address, server):
        """The `mixed` scenario's reply for this recipient at this stage, or None."""
        local = address.split("@")[0].lower()
        if stage == "rcpt" and local.startswith("perm"):
            return "550 5.1.1 no such user"
        once = {"rcpt": ("temp",), "data": ("drop", "stall")}[stage]
        kind = next((k for k in once if local.startswith(k)), None)
        if kind is None or (kind, address) in self.served:
            return None
        self.served.add((kind, address))
        if kind == "temp":
            return "451 4.3.0 try later"
        if kind == "drop":
            server.transport.abort()
            await asyncio.sleep(STALL_SECONDS)
        await asyncio.sleep(STALL_SECONDS)
        return "451 4.4.2 stalled"

    def count_connection(self):
        self.connections += 1
        write_atomically(os.path.join(self.directory, "connections"), str(self.connections).encode())

    async def fault(self, stage, server):
        """The scripted reply for this stage, or None to go on normally."""
        if stage != self.stage or self.remaining == 0:
            return None
        if self.remaining is not None:
            self.remaining -= 1
        if self.action == "drop":
            server.transport.abort()
            # connection_lost cancels this coroutine; nothing is ever replied.
            await asyncio.sleep(STALL_SECONDS)
        if self.action == "stall":
            await asyncio.sleep(STALL_SECONDS)
            return "451 4.4.2 stalled"
        return self.action

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.count_connection()
        session.host_name = hostname
        return responses

    async def handle_HELO(self, server, session, envelope, hostname):
        self.count_connection()
        session.host_name = hostname
        return "250 {}".format(server.hostname)

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        reply = await self.fault("mail", server)
        if reply:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = await (self.mixed_fault("rcpt", address, server) if self.stage == "mixed" else self.fault("rcpt", server))
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages += 1
        name = "msg-%04d" % self.messages
        # Recorded before any scripted fault: a server that drops the connection after reading the
        # data may well have kept the message, which is exactly the ambiguity under test.
        write_atomically(os.path.join(self.directory, name + ".eml"), envelope.original_content)
        meta = {"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                "mail_options": envelope.mail_options}
        write_atomically(os.path.join(self.directory, name + ".json"), json.dumps(meta).encode())
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.stage == "mixed":
            reply = None
            for address in envelope.rcpt_tos:
                reply = reply or await self.mixed_fault("data", address, server)
        else:
            reply = await self.fault("data", server)
        if reply:
            return reply
        return "250 2.0.0 OK queued as Q%04d" % self.messages


def parse_scenario(text):
    if text == "accept":
        return None, None, None
    if text == "mixed":
        return "mixed", None, None
    parts = text.split(":")
    if len(parts) not in (2, 3) or parts[0] not in ("mail", "rcpt", "data"):
        sys.exit("bad scenario: " + text)
    times = int(parts[2]) if len(parts) == 3 else None
    return parts[0], parts[1], times


def main():
    # A child inherits its parent thread's blocked signals; the Swift test runner blocks SIGTERM.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--auth")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--self-signed-tls", action="store_true")
    parser.add_argument("scenario")
    arguments = parser.parse_args()
    stage, action, times = parse_scenario(arguments.scenario)
    handler = Handler(arguments.dir, stage, action, times, arguments.delay)
    write_atomically(os.path.join(arguments.dir, "connections"), b"0")

    options = {}
    if arguments.auth:
        user, password = arguments.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = auth_data.login == user.encode() and auth_data.password == password.encode()
            # handled=False: aiosmtpd then replies itself (235, or 535 5.7.8 on failure).
            return AuthResult(success=ok, handled=False)

        options = dict(auth_required=True, auth_require_tls=False, authenticator=authenticator)

    if arguments.self_signed_tls:
        cert, key = (os.path.join(arguments.dir, name) for name in ("cert.pem", "key.pem"))
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1"],
                       check=True, capture_output=True)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        options["tls_context"] = context

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(loop.create_server(
        lambda: SMTP(handler, hostname="fixture.test", **options), host="127.0.0.1", port=arguments.port))
    # Tells the test this process owns the port (another test's server might answer on it too).
    write_atomically(os.path.join(arguments.dir, "listening"), str(arguments.port).encode())
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    loop.add_signal_handler(signal.SIGINT, loop.stop)
    try:
        loop.run_forever()
    finally:
        server.close()


if __name__ == "__main__":
    main()

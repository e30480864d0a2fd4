"""The send path against relays that take their time (issue 15), as cells of bench.py's run.

Relay cells: postfix's smtp-sink answering each message's DATA after one second (`-w 1`), so its
limit is one message a second per session; one seqd replica with 4, 64 and 256 transport sessions
(`delivery.concurrency`). Figures: messages per second timed from outside (from the moment the
work is due until the last delivery is recorded sent), the ratio to the relay's limit
(sessions / delay), and the most database connections the replica held meanwhile (sampled from
pg_stat_activity every 0.2 s).

Crash cell: three replicas send through the fixture SMTP server (aiosmtpd; it keeps every message
it received, so copies of one Message-ID can be counted) while one replica after another is
SIGKILLed and restarted every two seconds (half a second in quick mode); the figure is messages on the wire twice per kill,
against the bound (the sessions of the killed process).
"""

import os
import signal
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIXTURE_SMTP = HERE.parent / "Tests/Fixtures/smtp_server.py"

# Per mode: the relay cells' session counts and rounds (messages = sessions x rounds), and the crash
# cell's size, replicas and sessions per replica.
RELAY = {
    "quick": dict(sessions=[4, 16], delay=1, rounds=2, crash_messages=400, crash_replicas=3, crash_sessions=2,
                  kill_every=0.5),
    "full": dict(sessions=[4, 64, 256], delay=1, rounds=10, crash_messages=5000, crash_replicas=3, crash_sessions=2,
                 kill_every=2),
}


def settings(bench) -> dict:
    return RELAY["quick" if bench.args.quick else "full"]


def expected_cells(mode_name: str) -> list[str]:
    r = RELAY[mode_name]
    return [f"relay.seqd.s{s}" for s in r["sessions"]] + ["crash.smtp.kill"]


def wait_port(port: int, seconds: float = 10) -> None:
    """Returns once something accepts connections on 127.0.0.1:port (a sink just started)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def smtp_env(port: int, sessions: int) -> dict:
    return {"SEQD_DELIVERY_TRANSPORT": "smtp", "SEQD_DELIVERY_SMTP_URL": f"smtp://127.0.0.1:{port}",
            "SEQD_DELIVERY_SMTP_STARTTLS": "off", "SEQD_DELIVERY_CONCURRENCY": str(sessions),
            "SEQD_UNSUBSCRIBE_BASE_URL": "http://127.0.0.1:8080"}


SENT = ("SELECT count(*) FROM seqd.deliveries x JOIN bench.due d ON d.enrollment_id = x.enrollment_id "
        "WHERE d.tag = 'work' AND x.status = 'sent'")
CONNECTIONS = "SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND application_name LIKE 'seqd %'"


def relay(bench, template: str, rep: int) -> None:
    r = settings(bench)
    cells = [f"relay.seqd.s{s}" for s in r["sessions"]]
    if not bench.args.smtp_sink:
        for cell in cells:
            bench.fail(cell, "unavailable", bench.args.smtp_reason or "smtp-sink is not available")
        return
    port = bench.free_port()
    tools_env = dict(os.environ, LD_LIBRARY_PATH=bench.args.postfix_lib)
    # -w 1: every DATA is answered after a second, as a slow cloud relay would; 1024: listen backlog.
    sink = subprocess.Popen([bench.args.smtp_sink, "-u", "nobody", "-w", str(r["delay"]), f"127.0.0.1:{port}", "1024"],
                            env=tools_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        for sessions in r["sessions"]:
            relay_cell(bench, f"relay.seqd.s{sessions}", template, port, sessions, r, rep)
    finally:
        sink.kill()
        sink.wait()


def relay_cell(bench, cell: str, template: str, port: int, sessions: int, r: dict, rep: int) -> None:
    messages = sessions * r["rounds"]
    limit = sessions / r["delay"]
    db = bench.clone(template, "relay")
    processes = []
    try:
        processes = bench.start_daemons(db, 1, {**smtp_env(port, sessions), "SEQD_DELIVERY_LEASE_TIMEOUT": "60s"})
        bench.wait_ready(db, processes)
        peak = int(bench.psql(db, CONNECTIONS.format(db=db)))
        bench.add_due(db, messages, "bench-emails", 0, -(messages + 60_000), 1, "work")
        started = time.monotonic()
        deadline = started + r["rounds"] * r["delay"] * 6 + 60
        while True:
            sent = int(bench.psql(db, SENT))
            peak = max(peak, int(bench.psql(db, CONNECTIONS.format(db=db))))
            if sent >= messages:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{sent} of {messages} sent; {bench.daemon_errors(db)}")
            if any(p.poll() is not None for p in processes):
                raise RuntimeError(f"the daemon exited: {bench.daemon_errors(db)}")
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        problems = bench.stop_daemons(processes)
        rate = messages / elapsed
        bench.record(cell, rep=rep, value=rate, messages=messages, seconds=elapsed, relay_limit=limit,
                     ratio_relay=rate / limit, peak_connections=peak, **({"note": problems} if problems else {}))
    except Exception as error:
        bench.stop_daemons(processes)
        bench.fail(cell, "failed", str(error))
    finally:
        bench.drop(db)


def message_ids(directory: Path) -> Counter:
    copies = Counter()
    for path in directory.glob("*.eml"):
        for line in path.read_bytes().split(b"\r\n"):
            if line.startswith(b"Message-ID: "):
                copies[line[12:].decode()] += 1
                break
            if not line:
                break
    return copies


def crash(bench, template: str, rep: int) -> None:
    r = settings(bench)
    cell = "crash.smtp.kill"
    port = bench.free_port()
    directory = bench.work / f"crash-sink-{rep}"
    directory.mkdir(parents=True, exist_ok=True)
    # A relay that takes 20 ms to accept a message: each session has a message on the wire most of the time.
    sink = subprocess.Popen(["/usr/bin/python3", str(FIXTURE_SMTP), "--port", str(port), "--dir", str(directory),
                             "--delay", "0.02", "accept"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = bench.clone(template, "crash")
    processes = []
    try:
        wait_port(port)
        env = {**smtp_env(port, r["crash_sessions"]), "SEQD_DELIVERY_LEASE_TIMEOUT": "3s", "SEQD_DELIVERY_BACKOFF": "1s"}
        processes = bench.start_daemons(db, r["crash_replicas"], env)
        bench.wait_ready(db, processes)
        messages = r["crash_messages"]
        bench.add_due(db, messages, "bench-emails", 0, -(messages + 60_000), 1, "work")
        started = time.monotonic()
        kills, victim = 0, 0
        while int(bench.psql(db, SENT)) < messages:
            if time.monotonic() - started > 600:
                raise TimeoutError(f"{bench.psql(db, SENT)} of {messages} sent; {bench.daemon_errors(db)}")
            time.sleep(r["kill_every"])
            if int(bench.psql(db, SENT)) >= messages * 9 // 10:
                continue  # the tail is left to finish undisturbed
            process = processes[victim]
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills += 1
            processes[victim] = bench.start_daemons(db, 1, env)[0]  # same replica directory, a new process
            victim = (victim + 1) % len(processes)
        problems = bench.stop_daemons(processes)
        copies = message_ids(directory)
        twice = sum(n - 1 for n in copies.values() if n > 1)
        per_kill = twice / kills if kills else 0.0
        bench.record(cell, rep=rep, value=per_kill, kills=kills, twice=twice, messages=messages,
                     received=sum(copies.values()), distinct=len(copies), bound_per_kill=r["crash_sessions"],
                     seconds=time.monotonic() - started, **({"note": problems} if problems else {}))
    except Exception as error:
        bench.stop_daemons(processes)
        bench.fail(cell, "failed", str(error))
    finally:
        sink.send_signal(signal.SIGTERM)
        sink.wait()
        bench.drop(db)

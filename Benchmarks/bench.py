"""The benchmark's cells, run by Benchmarks/run against a throwaway cluster it has started.

Everything seqd does is measured from the database's own timestamps (audit events, delivery rows),
never from this script's clock; the ceilings come from pgbench, the peer from PgQueuer, the SMTP
sink's ceiling from postfix's smtp-source. Standard library only (Debian's python3); the database
is reached through psql and pgbench.

Results: one record per run in <out>/runs.jsonl, then the medians, their ratios to the matching
ceiling and to the peer, as a table on stdout and as JSON (report.py).
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import production
import relay

HERE = Path(__file__).resolve().parent

# Sizes are total enrollments in the database; the work of a cell is added on top of them (not due
# base population + the due rows of the run). "most not due" holds at every size but the quick one.
MODES = {
    "quick": dict(
        sizes=[1000], runs=1, ceiling_seconds=1, ceiling_transactions=10, ceiling_pool=400, clients=[1, 2, 4],
        batches=[1, 100], due_waits=100, due=100, replicas=[1, 2, 4], lag_rate=50, lag_seconds=1, first_step=2,
        peer_jobs=1000, peer_batches=[10, 100], smtp_due=50, smtp_senders=[1, 4], sink_messages=500, deadline=60,
        adversarial_seconds=0, endurance=2000),
    "full": dict(
        sizes=[10_000, 1_000_000], runs=3, ceiling_seconds=8, ceiling_pool=5000, clients=[1, 2, 4],
        batches=[1, 100], due_waits=50_000, due=20_000, replicas=[1, 2, 4], lag_rate=200, lag_seconds=10,
        first_step=30, peer_jobs=20_000, peer_batches=[10, 100], smtp_due=10_000, smtp_senders=[1, 4],
        sink_messages=20_000, deadline=600, adversarial_seconds=60, endurance=1_000_000),
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.mode = dict(MODES["quick" if args.quick else "full"])
        if args.sizes:
            self.mode["sizes"] = [int(n) for n in args.sizes.split(",")]
        if args.runs:
            self.mode["runs"] = args.runs
        # The relay and crash cells (issue 15) live in relay.py; the report reads their sessions here.
        self.mode["relay_sessions"] = relay.settings(self)["sessions"]
        self.only = set(args.only.split(",")) if args.only else None
        self.socket_dir = args.socket_dir
        self.seqd = args.seqd
        self.bindir = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout.strip()
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "mode.json").write_text(json.dumps({"name": "quick" if args.quick else "full", **self.mode}))
        # The daemons' working directories (logs, file-transport outboxes), one per run, removed after it.
        self.work = Path(tempfile.mkdtemp(prefix="seqd-bench-work."))
        self.runs_file = self.out / "runs.jsonl"
        self.runs_file.write_text("")
        self.counter = 0

    # ---------------------------------------------------------------- database helpers

    def url(self, db: str) -> str:
        return f"postgresql://postgres@/{db}?host={self.socket_dir}"

    def psql(self, db: str, sql: str) -> str:
        result = subprocess.run(
            [f"{self.bindir}/psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", self.url(db), "-c", sql],
            capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"psql on {db}: {result.stderr.strip()}")
        return result.stdout.strip()

    def psql_file(self, db: str, path: Path, **variables) -> None:
        command = [f"{self.bindir}/psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", self.url(db), "-f", str(path)]
        for name, value in variables.items():
            command += ["-v", f"{name}={value}"]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"psql -f {path.name} on {db}: {result.stderr.strip()}")

    def row(self, db: str, sql: str) -> list:
        return self.psql(db, sql).split("|")

    def fresh_name(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}_{self.counter}"

    def clone(self, template: str, prefix: str) -> str:
        name = self.fresh_name(prefix)
        # A large template is copied file by file after a checkpoint instead of WAL-logging every
        # block; a small one is faster WAL-logged (no checkpoint).
        size = int(template.rsplit("_", 1)[1])
        strategy = "FILE_COPY" if size >= 100_000 else "WAL_LOG"
        self.psql("postgres", f"CREATE DATABASE {name} TEMPLATE {template} STRATEGY {strategy}")
        return name

    def quiesce(self, db: str) -> None:
        """Starts each measured run from the same state: the seeding written out (a checkpoint
        does not land in the middle of the run). Quick mode does not care."""
        if not self.args.quick:
            self.psql(db, "CHECKPOINT")

    def drop(self, db: str) -> None:
        self.psql("postgres", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        for directory in self.work.glob(f"{db}-r*"):
            shutil.rmtree(directory, ignore_errors=True)

    def commits(self, db: str) -> int:
        self.psql("postgres", "SELECT pg_stat_clear_snapshot()")
        return int(self.psql("postgres", f"SELECT xact_commit FROM pg_stat_database WHERE datname = '{db}'"))

    def seqd_cli(self, db: str, *arguments: str) -> str:
        result = subprocess.run(
            [self.seqd, *arguments], capture_output=True, text=True, cwd=self.work, env=self.seqd_env(db, {}))
        if result.returncode != 0:
            raise RuntimeError(f"seqd {' '.join(arguments)}: exit {result.returncode}: {result.stderr.strip()}")
        return result.stdout

    def seqd_env(self, db: str, extra: dict) -> dict:
        # A clean environment: nothing of the caller's SEQD_* configuration leaks into a cell.
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root"),
               "DATABASE_URL": self.url(db), "SEQD_LOG_LEVEL": "warning"}
        env.update(extra)
        return env

    def record(self, cell: str, **fields) -> None:
        entry = {"cell": cell, **fields}
        with self.runs_file.open("a") as f:
            f.write(json.dumps(entry) + "\n")
        shown = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in fields.items()}
        log(f"{cell}: {shown}")

    def fail(self, cell: str, status: str, reason: str) -> None:
        self.record(cell, status=status, reason=reason)

    # ---------------------------------------------------------------- templates

    def make_template(self, size: int) -> str:
        name = f"tmpl_{size}"
        self.psql("postgres", f"DROP DATABASE IF EXISTS {name}")
        self.psql("postgres", f"CREATE DATABASE {name}")
        self.seqd_cli(name, "migrate")
        self.seqd_cli(name, "sequence", "apply", str(HERE / "sequences/bench-waits.yaml"),
                      str(HERE / "sequences/bench-emails.yaml"))
        started = time.monotonic()
        self.psql_file(name, HERE / "sql/seed_base.sql", n=size)
        log(f"template {name}: {size} enrollments seeded in {time.monotonic() - started:.1f}s")
        return name

    def add_due(self, db: str, count: int, sequence: str, step: int, offset_ms: float, interval_ms: float, tag: str):
        self.psql_file(db, HERE / "sql/add_due.sql", count=count, sequence=sequence, step=step,
                       offset_ms=offset_ms, interval_ms=interval_ms, tag=tag)

    # ---------------------------------------------------------------- 1. ceilings (pgbench)

    def ceilings(self, size: int, template: str, rep: int) -> None:
        """pgbench on a fresh copy per configuration (quick mode: one copy per script, and a fixed
        number of transactions per client instead of a duration, to stay fast)."""
        m = self.mode
        quick = self.args.quick
        for script, sequence, step in (("advance", "bench-waits", 1), ("email", "bench-emails", 0)):
            db = None
            try:
                for batch in m["batches"]:
                    for clients in m["clients"]:
                        cell = f"ceiling.{script}.b{batch}.c{clients}.n{size}"
                        try:
                            if db is None or not quick:
                                db = self.clone(template, "ceiling")
                                # A constant pool of due rows: the scripts make them due again at once.
                                pool = max(m["ceiling_pool"], max(m["clients"]) * max(m["batches"]) * 4)
                                self.add_due(db, pool, sequence, step, -(pool + 60_000), 1, "pool")
                                self.quiesce(db)
                            self.ceiling_run(cell, db, script, batch, clients, rep)
                        except Exception as error:
                            self.fail(cell, "failed", str(error))
                        finally:
                            if not quick and db:
                                self.drop(db)
                                db = None
            finally:
                if db:
                    self.drop(db)

    def ceiling_run(self, cell: str, db: str, script: str, batch: int, clients: int, rep: int) -> None:
        m = self.mode
        count_sql = ("SELECT count(*) FROM seqd.enrollment_events WHERE actor = 'bench-ceiling'"
                     if script == "advance" else "SELECT count(*) FROM seqd.deliveries WHERE status = 'sent'")
        before = int(self.psql(db, count_sql))
        length = ["-t", str(m["ceiling_transactions"])] if self.args.quick else ["-T", str(m["ceiling_seconds"])]
        started = time.monotonic()
        result = subprocess.run(
            [f"{self.bindir}/pgbench", "-n", "-M", "prepared", "-f", str(HERE / f"sql/ceiling_{script}.pgbench"),
             "-c", str(clients), "-j", str(clients), *length, "-D", f"batch={batch}", "-h", self.socket_dir,
             "-U", "postgres", db],
            capture_output=True, text=True)
        elapsed = time.monotonic() - started
        if result.returncode != 0:
            raise RuntimeError(result.stderr.strip()[-500:])
        tps = float(re.search(r"tps = ([0-9.]+)", result.stdout).group(1))
        rows = int(self.psql(db, count_sql)) - before
        # pgbench's tps x batch, and as a check the rows the database counted over the run.
        self.record(cell, rep=rep, value=tps * batch, tps=tps, db_rows_per_s=rows / elapsed)

    # ---------------------------------------------------------------- 2. peer (PgQueuer)

    def peer(self, rep: int) -> None:
        m = self.mode
        for batch in m["peer_batches"]:
            cell = f"peer.pgqueuer.b{batch}"
            if not self.args.peer_python:
                self.fail(cell, "unavailable", self.args.peer_reason or "PgQueuer is not installed")
                continue
            db = self.fresh_name("peer")
            self.psql("postgres", f"CREATE DATABASE {db}")
            try:
                result = subprocess.run(
                    [self.args.peer_python, str(HERE / "peer_pgqueuer.py"), "--socket-dir", self.socket_dir,
                     "--database", db, "--jobs", str(m["peer_jobs"]), "--batch", str(batch),
                     "--timeout", str(m["deadline"])],
                    capture_output=True, text=True)
                lines = result.stdout.strip().splitlines()
                outcome = json.loads(lines[-1]) if lines else {"error": result.stderr.strip()[-300:]}
                if "error" in outcome:
                    self.fail(cell, "unavailable", f"PgQueuer failed: {outcome['error']}")
                else:
                    self.record(cell, rep=rep, value=outcome["rate"], jobs=outcome["jobs"])
            finally:
                self.drop(db)

    # ---------------------------------------------------------------- 3. seqd

    def start_daemons(self, db: str, count: int, extra: dict) -> list:
        processes = []
        for index in range(count):
            directory = self.work / f"{db}-r{index}"
            directory.mkdir(parents=True, exist_ok=True)
            env = self.seqd_env(db, {"SEQD_DELIVERY_FILE_DIRECTORY": str(directory / "outbox"), **extra})
            processes.append(subprocess.Popen(
                [self.seqd, "run"], cwd=directory, env=env, stdin=subprocess.DEVNULL,
                stdout=open(directory / "stdout.log", "w"), stderr=open(directory / "stderr.log", "w")))
        return processes

    @staticmethod
    def memory_mib(process, field: str = "VmHWM") -> float:
        """A memory figure of /proc/<pid>/status: VmHWM (peak RSS) or VmRSS (now)."""
        try:
            for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return float("nan")

    def stop_daemons(self, processes: list) -> str:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        problems = []
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                problems.append(f"pid {process.pid} needed SIGKILL")
        return "; ".join(problems)

    def daemon_errors(self, db: str) -> str:
        texts = []
        for path in sorted(self.work.glob(f"{db}-r*/stderr.log")):
            text = path.read_text().strip()
            if text:
                texts.append(text.splitlines()[-1][:300])
        return " | ".join(texts)

    def wait_for(self, db: str, sql: str, target: int, processes: list, seconds: float) -> int:
        deadline = time.monotonic() + seconds
        while True:
            done = int(self.psql(db, sql))
            if done >= target:
                return done
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {done} of {target} done after {seconds:.0f}s; {self.daemon_errors(db)}")
            if any(p.poll() is not None for p in processes):
                raise RuntimeError(f"a daemon exited: {self.daemon_errors(db)}")
            time.sleep(0.1)

    def wait_ready(self, db: str, processes: list) -> None:
        # Ready when every replica has all its database sessions (2 advancing, the default of
        # worker.concurrency, then claim, settle, maintenance and LISTEN; the transport sessions
        # hold none): a wake-up from `enroll` then reaches them all and nobody is still connecting.
        self.wait_for(
            db, f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND application_name ~ "
                "'^seqd (advance-|claim|settle|maintenance|listen)'",
            (2 + 4) * len(processes), processes, 30)

    # What a throughput cell still has to do, read through the partial indexes the daemon itself
    # claims from, so that polling every 0.1 s costs the server next to nothing while the daemon
    # is measured. (Counting the finished rows joined to bench.due cost 120 ms a poll at a million
    # enrollments, where the audit table is large: about half a core taken from the daemon.)
    LEFT = {
        "waits": "SELECT count(*) FROM seqd.enrollments WHERE status = 'active' AND next_run_at <= now()",
        "emails": "SELECT (SELECT count(*) FROM seqd.enrollments WHERE status = 'active' AND next_run_at <= now()) "
                  "+ (SELECT count(*) FROM seqd.deliveries WHERE status IN ('pending', 'sending', 'unknown'))",
    }
    # The lag cell's advances so far (each moves its enrollment from step 1 to 2), by primary key:
    # its rows fall due over time, so what is due now says nothing.
    LAG_DONE = ("SELECT count(*) FROM bench.due d JOIN seqd.enrollments e ON e.id = d.enrollment_id "
                "WHERE d.tag = 'lag' AND e.current_step_index = 2")
    # The rate, per kind, from the database's own clock: the window opens when the first
    # transaction that did the work started (its now(): the audit event's `at`, or the delivery
    # row's `created_at`) and closes when the last one committed (the commit timestamp of the row
    # it wrote; the cluster runs with track_commit_timestamp = on).
    RATE = {
        "waits": """
            SELECT count(*), extract(epoch FROM max(pg_xact_commit_timestamp(ev.xmin)) - min(ev.at))
            FROM seqd.enrollment_events ev JOIN bench.due d ON d.enrollment_id = ev.enrollment_id
            WHERE d.tag = 'work' AND ev.event = 'due'""",
        "emails": """
            SELECT count(*), extract(epoch FROM max(pg_xact_commit_timestamp(x.xmin)) - min(x.created_at))
            FROM seqd.deliveries x JOIN bench.due d ON d.enrollment_id = x.enrollment_id
            WHERE d.tag = 'work' AND x.status = 'sent'""",
    }

    def throughput(self, cell: str, template: str, kind: str, replicas: int, due: int, extra: dict, rep: int) -> None:
        """The replicas start first and wait idle; then `due` enrollments become due at once (with
        the NOTIFY `seqd enroll` sends), so every replica works from the first moment and start-up
        is never part of the measured window."""
        started = time.monotonic()
        phases = {}

        def phase(name: str) -> None:  # where a run's wall time goes, for the log
            phases[name] = round(time.monotonic() - started - sum(phases.values()), 2)

        db = self.clone(template, "seqd")
        processes = []
        try:
            sequence, step = ("bench-waits", 1) if kind == "waits" else ("bench-emails", 0)
            self.quiesce(db)
            phase("clone")
            processes = self.start_daemons(db, replicas, extra)
            self.wait_ready(db, processes)
            phase("start")
            commits = self.commits(db)
            self.add_due(db, due, sequence, step, -(due + 60_000), 1, "work")
            self.wait_for(db, f"SELECT {due} - ({self.LEFT[kind]})", due, processes, self.mode["deadline"])
            phase("work")
            rss = max(self.memory_mib(p) for p in processes)
            problems = self.stop_daemons(processes)
            phase("stop")
            counted, seconds = self.row(db, self.RATE[kind])
            if int(counted) != due:  # nothing left to do, yet not all of it done: say so
                raise RuntimeError(f"{counted} of {due} done; {self.daemon_errors(db)}")
            # Transactions per row, idle polls included (sessions flush their statistics when they
            # end, so this is read after the stop): what the work cost in commits.
            commits = (self.commits(db) - commits) / due
            self.record(cell, rep=rep, value=int(counted) / float(seconds), rows=due, seconds=float(seconds),
                        peak_rss_mib=rss, transactions_per_row=commits, wall=phases,
                        **({"note": problems} if problems else {}))
        except Exception as error:
            self.stop_daemons(processes)
            self.fail(cell, "failed", str(error))
        finally:
            self.drop(db)

    def lag(self, size: int, template: str, rep: int) -> None:
        """Due-to-advanced lag under capacity: wait steps fall due at lag_rate per second while one
        replica runs; lag = the commit time of the advance (of its audit event) - the due time
        seeded for it."""
        m = self.mode
        cell = f"seqd.lag.n{size}"
        db = self.clone(template, "lag")
        processes = []
        try:
            processes = self.start_daemons(db, 1, {"SEQD_DELIVERY_TRANSPORT": "null"})
            self.wait_ready(db, processes)
            count = m["lag_rate"] * m["lag_seconds"]
            self.add_due(db, count, "bench-waits", 1, 1500, 1000 / m["lag_rate"], "lag")
            self.wait_for(db, self.LAG_DONE, count, processes,
                          m["lag_seconds"] + m["deadline"])
            self.stop_daemons(processes)
            p50, p99, worst = self.row(db, """
                SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s), percentile_cont(0.99) WITHIN GROUP (ORDER BY s), max(s)
                FROM (SELECT extract(epoch FROM pg_xact_commit_timestamp(ev.xmin) - d.due_at) * 1000 AS s
                      FROM seqd.enrollment_events ev JOIN bench.due d ON d.enrollment_id = ev.enrollment_id
                      WHERE d.tag = 'lag' AND ev.event = 'due') l""")
            self.record(cell, rep=rep, value=float(p99), p50_ms=float(p50), p99_ms=float(p99), max_ms=float(worst),
                        samples=count, rate_per_s=m["lag_rate"])
        except Exception as error:
            self.stop_daemons(processes)
            self.fail(cell, "failed", str(error))
        finally:
            self.drop(db)

    def first_step(self, size: int, template: str, rep: int) -> None:
        """First-step latency: `seqd enroll` one contact at a time while one replica runs (null
        transport); latency = the commit of the confirmation that marked the delivery sent - the
        commit of the enroll (both commit timestamps)."""
        m = self.mode
        cell = f"seqd.first_step.n{size}"
        db = self.clone(template, "first")
        processes = []
        try:
            count = m["first_step"]
            self.psql(db, f"""INSERT INTO seqd.contacts (email, first_name, time_zone)
                             SELECT 'first-' || g || '@bench.example', 'Ann', 'UTC' FROM generate_series(1, {count}) g""")
            processes = self.start_daemons(db, 1, {"SEQD_DELIVERY_TRANSPORT": "null"})
            self.wait_ready(db, processes)
            for index in range(1, count + 1):
                self.seqd_cli(db, "enroll", "--sequence", "bench-emails", "--contact", f"first-{index}@bench.example")
                time.sleep(0.2)
            done_sql = ("SELECT count(*) FROM seqd.deliveries x JOIN seqd.contacts c ON c.id = x.contact_id "
                        "WHERE c.email LIKE 'first-%' AND x.status = 'sent'")
            self.wait_for(db, done_sql, count, processes, m["deadline"])
            self.stop_daemons(processes)
            p50, p99, a50, a99 = self.row(db, """
                WITH l AS (
                    SELECT extract(epoch FROM pg_xact_commit_timestamp(x.xmin) - pg_xact_commit_timestamp(ev.xmin)) * 1000 AS sent,
                           extract(epoch FROM x.created_at - pg_xact_commit_timestamp(ev.xmin)) * 1000 AS advanced
                    FROM seqd.deliveries x JOIN seqd.contacts c ON c.id = x.contact_id
                    JOIN seqd.enrollment_events ev ON ev.enrollment_id = x.enrollment_id AND ev.event = 'enroll'
                    WHERE c.email LIKE 'first-%')
                SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY sent), percentile_cont(0.99) WITHIN GROUP (ORDER BY sent),
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY advanced), percentile_cont(0.99) WITHIN GROUP (ORDER BY advanced)
                FROM l""")
            self.record(cell, rep=rep, value=float(p99), p50_ms=float(p50), p99_ms=float(p99),
                        advanced_p50_ms=float(a50), advanced_p99_ms=float(a99), samples=count)
        except Exception as error:
            self.stop_daemons(processes)
            self.fail(cell, "failed", str(error))
        finally:
            self.drop(db)

    def endurance(self, template: str, rep: int) -> None:
        """The daemon's memory over a long run: one replica (null transport) works through
        `endurance` due emails, each an advance and a send, while its VmRSS is read every second.
        Flat means the figure at the end is within 10% of the one read once a tenth was done (the
        start-up and the first batches fill the allocator's arenas and the caches; what grows after
        that would grow without bound)."""
        count = self.mode["endurance"]
        cell = "seqd.rss_endurance"
        db = self.clone(template, "endure")
        processes = []
        try:
            self.add_due(db, count, "bench-emails", 0, -(count + 60_000), 1, "work")
            self.quiesce(db)
            processes = self.start_daemons(db, 1, {"SEQD_DELIVERY_TRANSPORT": "null"})
            started = time.monotonic()
            deadline = max(self.mode["deadline"], count / 1000)
            samples = []  # [seconds, done, VmRSS MiB]
            while True:
                left = int(self.psql(db, self.LEFT["emails"]))
                rss = self.memory_mib(processes[0], "VmRSS")
                samples.append([round(time.monotonic() - started, 1), count - left, round(rss, 2)])
                if left == 0:
                    break
                if processes[0].poll() is not None:
                    raise RuntimeError(f"the daemon exited: {self.daemon_errors(db)}")
                if time.monotonic() - started > deadline:
                    raise TimeoutError(f"{count - left:,} of {count:,} done after {deadline:.0f}s")
                time.sleep(1)
            peak = self.memory_mib(processes[0])
            problems = self.stop_daemons(processes)
            # The first reading once a tenth was done (the last one always qualifies).
            warm_done, warm = next((done, rss) for _, done, rss in samples if done >= count / 10)
            end = samples[-1][2]
            self.record(cell, rep=rep, value=end - warm, warm_mib=warm, warm_done=warm_done, end_mib=end, peak_mib=peak,
                        advances=count, seconds=samples[-1][0], samples=samples,
                        **({"note": problems} if problems else {}))
        except Exception as error:
            self.stop_daemons(processes)
            self.fail(cell, "failed", str(error))
        finally:
            self.drop(db)

    # ---------------------------------------------------------------- 4. SMTP

    @staticmethod
    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    def smtp(self, template: str, rep: int) -> None:
        m = self.mode
        cells = [f"smtp.sink_ceiling.s{s}" for s in m["smtp_senders"]] + [f"smtp.seqd.s{s}" for s in m["smtp_senders"]]
        if not self.args.smtp_sink:
            for cell in cells:
                self.fail(cell, "unavailable", self.args.smtp_reason or "smtp-sink is not available")
            return
        port = self.free_port()
        tools_env = dict(os.environ, LD_LIBRARY_PATH=self.args.postfix_lib)
        # -u nobody: smtp-sink drops root privileges to this user after binding.
        sink = subprocess.Popen([self.args.smtp_sink, "-u", "nobody", f"127.0.0.1:{port}", "256"], env=tools_env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            try:
                relay.wait_port(port)
            except RuntimeError:
                pass  # the cells below fail on their own, each with its reason
            # The sink's own ceiling: postfix's trivial client, one connection per session kept open
            # (-d), messages about as long as seqd's.
            for senders in m["smtp_senders"]:
                cell = f"smtp.sink_ceiling.s{senders}"
                started = time.monotonic()
                result = subprocess.run(
                    [self.args.smtp_source, "-d", "-s", str(senders), "-m", str(m["sink_messages"]), "-l", "1200",
                     "-f", "bench@example.com", "-t", "sink@bench.example", f"127.0.0.1:{port}"],
                    env=tools_env, capture_output=True, text=True)
                elapsed = time.monotonic() - started
                if result.returncode != 0:
                    self.fail(cell, "failed", result.stderr.strip()[-300:])
                else:
                    self.record(cell, rep=rep, value=m["sink_messages"] / elapsed, messages=m["sink_messages"])
            for senders in m["smtp_senders"]:
                cell = f"smtp.seqd.s{senders}"
                if self.args.smtp_pending:
                    self.fail(cell, "pending", self.args.smtp_pending)
                    continue
                self.throughput(cell, template, "emails", 1, m["smtp_due"], {
                    "SEQD_DELIVERY_TRANSPORT": "smtp", "SEQD_DELIVERY_SMTP_URL": f"smtp://127.0.0.1:{port}",
                    "SEQD_DELIVERY_SMTP_STARTTLS": "off", "SEQD_DELIVERY_CONCURRENCY": str(senders),
                    "SEQD_UNSUBSCRIBE_BASE_URL": "http://127.0.0.1:8080"}, rep)
        finally:
            sink.kill()  # a sink keeps nothing worth a clean shutdown
            sink.wait()

    # ---------------------------------------------------------------- 5. adversarial

    def hold_snapshot(self, db: str):
        """Opens the forgotten psql session: REPEATABLE READ, one read, then idle in transaction."""
        holder = subprocess.Popen(
            [f"{self.bindir}/psql", "-X", "-q", "-d", self.url(db)], stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
        holder.stdin.write("BEGIN ISOLATION LEVEL REPEATABLE READ;\nSELECT count(*) FROM seqd.contacts;\n")
        holder.stdin.flush()
        self.wait_for(db, f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND backend_xmin IS NOT NULL "
                          "AND state = 'idle in transaction'", 1, [], 30)
        return holder

    @staticmethod
    def release(holder) -> None:
        holder.stdin.close()
        holder.terminate()
        holder.wait()

    def adversarial(self, template: str, size: int, rep: int) -> None:
        """A transaction held open in REPEATABLE READ (a forgotten psql session) keeps every dead
        index entry visible to the claims. Ceiling (a) at batch 100 and 2 clients, and seqd (one
        replica) on a backlog of due wait steps, each while the snapshot is held for
        adversarial_seconds and for 10 s after it is released, on the same database."""
        seconds = self.mode["adversarial_seconds"]
        after = 10
        # Ceiling.
        db = self.clone(template, "adv")
        holder = None
        try:
            pool = self.mode["ceiling_pool"]
            self.add_due(db, pool, "bench-waits", 1, -(pool + 60_000), 1, "pool")
            holder = self.hold_snapshot(db)
            for phase, duration in (("during", seconds), ("after", after)):
                if phase == "after":
                    self.release(holder)
                    holder = None
                result = subprocess.run(
                    [f"{self.bindir}/pgbench", "-n", "-M", "prepared", "-f", str(HERE / "sql/ceiling_advance.pgbench"),
                     "-c", "2", "-j", "2", "-T", str(duration), "-D", "batch=100", "-h", self.socket_dir,
                     "-U", "postgres", db], capture_output=True, text=True)
                if result.returncode != 0:
                    raise RuntimeError(result.stderr.strip()[-300:])
                tps = float(re.search(r"tps = ([0-9.]+)", result.stdout).group(1))
                self.record(f"adversarial.ceiling.{phase}.n{size}", rep=rep, value=tps * 100, seconds=duration)
        except Exception as error:
            for phase in ("during", "after"):
                self.fail(f"adversarial.ceiling.{phase}.n{size}", "failed", str(error))
        finally:
            if holder:
                self.release(holder)
            self.drop(db)
        # seqd: a backlog larger than it can advance in the whole window, all due already.
        db = self.clone(template, "adv")
        holder = None
        processes = []
        try:
            # seqd advanced 4,200/s during the hold and ~20,000/s after it in the run of
            # 2026-11-30 11:11: 250,000 ran out inside the window and left nothing to measure after.
            backlog = 700_000
            self.add_due(db, backlog, "bench-waits", 1, -(backlog * 0.01 + 60_000), 0.01, "work")
            holder = self.hold_snapshot(db)
            t0 = self.psql(db, "SELECT clock_timestamp()")
            processes = self.start_daemons(db, 1, {"SEQD_DELIVERY_TRANSPORT": "null"})
            time.sleep(seconds)
            t1 = self.psql(db, "SELECT clock_timestamp()")
            self.release(holder)
            holder = None
            time.sleep(after)
            t2 = self.psql(db, "SELECT clock_timestamp()")
            self.stop_daemons(processes)
            left = int(self.psql(db, "SELECT count(*) FROM bench.due d JOIN seqd.enrollments e ON e.id = d.enrollment_id "
                                     "WHERE d.tag = 'work' AND e.current_step_index = 1"))
            if left == 0:
                raise RuntimeError(f"the backlog of {backlog:,} ran out before the window ended: raise it")
            during, after_rate = self.row(db, f"""
                WITH c AS (SELECT pg_xact_commit_timestamp(ev.xmin) AS at
                           FROM seqd.enrollment_events ev JOIN bench.due d ON d.enrollment_id = ev.enrollment_id
                           WHERE d.tag = 'work' AND ev.event = 'due')
                SELECT count(*) FILTER (WHERE at >= '{t0}' AND at < '{t1}') / extract(epoch FROM '{t1}'::timestamptz - '{t0}'),
                       count(*) FILTER (WHERE at >= '{t1}' AND at < '{t2}') / extract(epoch FROM '{t2}'::timestamptz - '{t1}')
                FROM c""")
            self.record(f"adversarial.seqd.during.n{size}", rep=rep, value=float(during), seconds=seconds)
            self.record(f"adversarial.seqd.after.n{size}", rep=rep, value=float(after_rate), seconds=after)
        except Exception as error:
            self.stop_daemons(processes)
            for phase in ("during", "after"):
                self.fail(f"adversarial.seqd.{phase}.n{size}", "failed", str(error))
        finally:
            if holder:
                self.release(holder)
            self.drop(db)

    # ---------------------------------------------------------------- the run

    def wanted(self, group: str) -> bool:
        return self.only is None or group in self.only

    def run(self) -> None:
        m = self.mode
        if self.only == {"production"}:  # it makes its own database: no templates to build
            production.run(self)
            shutil.rmtree(self.work, ignore_errors=True)
            return
        templates = {size: self.make_template(size) for size in m["sizes"]}
        small = templates[m["sizes"][0]]
        # Repetitions are interleaved (all cells once, then all again) so drift in the machine's load
        # spreads over every cell instead of hitting one.
        for rep in range(1, m["runs"] + 1):
            log(f"=== repetition {rep} of {m['runs']}")
            for size, template in templates.items():
                if self.wanted("ceilings"):
                    self.ceilings(size, template, rep)
                for replicas in m["replicas"] if self.wanted("seqd") else []:
                    self.throughput(f"seqd.waits.r{replicas}.n{size}", template, "waits", replicas, m["due_waits"],
                                    {}, rep)
                    self.throughput(f"seqd.emails_null.r{replicas}.n{size}", template, "emails", replicas, m["due"],
                                    {"SEQD_DELIVERY_TRANSPORT": "null"}, rep)
                    self.throughput(f"seqd.emails_file.r{replicas}.n{size}", template, "emails", replicas, m["due"],
                                    {"SEQD_DELIVERY_TRANSPORT": "file"}, rep)
                if self.wanted("latency"):
                    self.lag(size, template, rep)
                    self.first_step(size, template, rep)
            if self.wanted("peer"):
                self.peer(rep)
            if self.wanted("smtp"):
                self.smtp(small, rep)
            if self.wanted("relay"):
                relay.relay(self, small, rep)
            if self.wanted("crash"):
                relay.crash(self, small, rep)
        # Once, after the repetitions: it takes minutes, and its point is the shape of one run.
        if self.wanted("endurance"):
            self.endurance(small, 1)
        # Once, after the repetitions: it takes minutes and its point is the ratio during / after.
        if self.wanted("adversarial") and m["adversarial_seconds"] > 0 and not self.args.no_adversarial:
            self.adversarial(small, m["sizes"][0], 1)
        elif self.wanted("adversarial"):
            for cell in (f"adversarial.{what}.{phase}.n{m['sizes'][0]}" for what in ("ceiling", "seqd")
                         for phase in ("during", "after")):
                self.fail(cell, "skipped", "quick mode or --no-adversarial: the cell holds a transaction open for 60 s")
        for template in templates.values():
            self.drop(template)
        # Once, last: a database of its own (a million enrollments in a full run), see production.py.
        if self.wanted("production"):
            production.run(self)
        shutil.rmtree(self.work, ignore_errors=True)


def main() -> None:
    # A parent may hand its signal mask down with SIGTERM blocked (a test runner's thread does):
    # every child would inherit it, and neither the daemons nor smtp-sink could then be stopped.
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    # Every client of the run (psql polls, pgbench's ceilings, the peer if its driver reads it)
    # runs without JIT, as seqd's own sessions do: a stale estimate can make a short statement
    # spend seconds compiling, which would charge the cell for the harness or lower a ceiling.
    os.environ["PGOPTIONS"] = "-c jit=off"
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--socket-dir", required=True)
    parser.add_argument("--seqd", required=True)
    parser.add_argument("--out", required=True, help="directory for runs.jsonl and mode.json")
    parser.add_argument("--peer-python", default="")
    parser.add_argument("--peer-reason", default="")
    parser.add_argument("--smtp-sink", default="")
    parser.add_argument("--smtp-source", default="")
    parser.add_argument("--postfix-lib", default="")
    parser.add_argument("--smtp-reason", default="")
    parser.add_argument("--smtp-pending", default="", help="why seqd's SMTP cells are pending, if they are")
    parser.add_argument("--no-adversarial", action="store_true")
    # For reproducing or debugging part of a run; a report of a partial run lists the rest as missing.
    parser.add_argument("--only", default="",
                        help="comma-separated: ceilings,peer,seqd,latency,smtp,relay,crash,endurance,adversarial,production")
    parser.add_argument("--sizes", default="", help="comma-separated enrollment counts instead of the mode's")
    parser.add_argument("--runs", type=int, default=0, help="repetitions instead of the mode's")
    args = parser.parse_args()
    Bench(args).run()


if __name__ == "__main__":
    main()

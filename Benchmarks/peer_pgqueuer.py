"""Peer cell: how fast PgQueuer drains no-op jobs from the same PostgreSQL server.

Run with the throwaway virtual environment's python (Benchmarks/run makes it and installs
`pgqueuer[asyncpg]` there; nothing of it is committed). Installs PgQueuer's schema into the given
database, enqueues --jobs no-op jobs in bulk, then runs one QueueManager in drain mode at
--batch and prints one JSON object: the drain rate between the first and the last job executed
(process start, schema install and enqueueing excluded).

    python peer_pgqueuer.py --socket-dir /tmp/x/pg --database peer_1 --jobs 20000 --batch 100
"""

import argparse
import asyncio
import json
import sys
import time
from datetime import timedelta

import asyncpg
from pgqueuer import QueueManager
from pgqueuer.db import AsyncpgDriver
from pgqueuer.queries import Queries
from pgqueuer.types import QueueExecutionMode


async def main(args: argparse.Namespace) -> dict:
    connect = dict(host=args.socket_dir, database=args.database, user="postgres")

    setup = await asyncpg.connect(**connect)
    queries = Queries(AsyncpgDriver(setup))
    await queries.install()
    chunk = 5000
    for start in range(0, args.jobs, chunk):
        n = min(chunk, args.jobs - start)
        await queries.enqueue(["noop"] * n, [None] * n, [0] * n)
    await setup.close()

    executed: list[float] = []
    connection = await asyncpg.connect(**connect)
    qm = QueueManager(Queries(AsyncpgDriver(connection)))

    @qm.entrypoint("noop")
    async def noop(job) -> None:  # the job does nothing: only the queue's own cost is measured
        executed.append(time.perf_counter())

    await asyncio.wait_for(
        qm.run(batch_size=args.batch, mode=QueueExecutionMode.drain, dequeue_timeout=timedelta(seconds=1)),
        timeout=args.timeout,
    )
    await connection.close()
    if len(executed) < 2:
        raise RuntimeError(f"only {len(executed)} jobs ran")
    span = executed[-1] - executed[0]
    return {"jobs": len(executed), "seconds": span, "rate": (len(executed) - 1) / span}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--socket-dir", required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=300)
    try:
        print(json.dumps(asyncio.run(main(parser.parse_args()))))
    except Exception as error:  # reported as the cell's reason, not a traceback
        print(json.dumps({"error": f"{type(error).__name__}: {error}"}))
        sys.exit(1)

"""Many threads inserting the same unique job at once (run as a process by the unique tests).

Usage: python -m tests.unique_race URL PREFIX THREADS EACH; prints the ids it got, as JSON.
"""

from __future__ import annotations

import json
import sys
import threading

import psycopg

from engine import Engine, Worker


class OnlyOnce(Worker, queue="uniq", unique={"period": None}):
    def perform(self, job):  # type: ignore[no-untyped-def]
        return None


def main() -> None:
    url, prefix, threads, each = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    eng = Engine(url, prefix=prefix)
    barrier = threading.Barrier(threads)
    got: list[tuple[int, bool]] = []
    lock = threading.Lock()

    def run() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            barrier.wait()
            for _ in range(each):
                job = eng.insert(OnlyOnce.new({"key": "same"}), conn=conn)
                with lock:
                    got.append((job.id, job.conflict))

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    print(json.dumps(got))


if __name__ == "__main__":
    main()

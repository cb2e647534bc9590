"""The shared harness's Lysmore adapter with its bulk insert through ``Engine.insert_many``.

``../shared/bench/bench_lysmore.py`` inserts in bulk with ``insert_all`` of built specs (a Job
back for each); this measures the path for many jobs of one worker that returns a count, against
``bench_raw.py``'s one INSERT of a JSON array, in the same harness:

    python tools/perf/bench_insert_many.py --bench-dir ../shared/bench \\
        --dsn postgresql://root@127.0.0.1:5432/bench_lys --phases bulk --reps 5
"""

from __future__ import annotations

import sys


def _harness_dir() -> str:
    if "--bench-dir" in sys.argv:
        at = sys.argv.index("--bench-dir")
        path = sys.argv[at + 1]
        del sys.argv[at : at + 2]
        return path
    return "../shared/bench"


sys.path.insert(0, _harness_dir())

from bench_lysmore import LysmoreAdapter, Noop  # noqa: E402
from benchcommon import main  # noqa: E402


class InsertManyAdapter(LysmoreAdapter):
    name = "lysmore-insert_many"

    async def insert_many(self, n: int) -> None:
        self.client.insert_many(Noop, [{"i": i} for i in range(n)])


if __name__ == "__main__":
    main(InsertManyAdapter)

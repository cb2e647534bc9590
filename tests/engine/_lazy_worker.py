"""A worker module that nothing imports up front: a node runs it only if told it may import it."""

from engine import Worker


class Lazy(Worker, queue="badinput"):
    def perform(self, job):  # type: ignore[no-untyped-def]
        return {"lazy": True}

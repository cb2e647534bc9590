"""The demo's generated workers: fake data in, random work, random failures out.

Like the seed's ``WelcomeMailer``: each ``perform`` fails about 15% of the time and works for a
random 100 ms to 60 s, divided by the demo speed (``set_speed``), so a short run at ``--speed 50``
still passes through every state. Work waits on ``job.wait_cancelled`` so a cancelled, timed-out or
released job stops at once.
"""

from __future__ import annotations

import os
import random
import threading
from collections import OrderedDict
from typing import Any, ClassVar

from faker import Faker

from engine import Cancel, CronEntry, Discard, Job, JobSpec, Snooze, Worker, default_backoff

FAILURE_RATE = 0.15
MIN_WORK = 0.1  # seconds at speed 1, as the seed's 100..60_000 ms
MAX_WORK = 60.0

# The seed's "Smart Engine" configuration, exactly.
QUEUES: dict[str, Any] = {
    "analysis": 20,
    "default": 30,
    "events": 15,
    "exports": 8,
    "mailers": {"local_limit": 10, "rate_limit": {"allowed": 20, "period": 30}},
    "media": {"global_limit": 10},
}

_speed_lock = threading.Lock()


def _speed_from_env() -> float:
    raw = os.environ.get("LYSMORE_DEMO_SPEED", "")
    try:
        value = float(raw) if raw else 1.0
    except ValueError:
        return 1.0
    return value if value > 0 else 1.0


_speed = _speed_from_env()


def set_speed(speed: float) -> None:
    """Make every demo duration (work, backoff, snooze, schedule) ``speed`` times shorter."""
    global _speed
    if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not 0 < speed <= 100_000:
        raise ValueError(f"speed must be a number above 0 and at most 100000, got {speed!r}")
    with _speed_lock:
        _speed = float(speed)


def get_speed() -> float:
    """The speed factor the workers of this process run at (1.0 is the seed's real time)."""
    return _speed


def scaled(seconds: float) -> float:
    """``seconds`` of demo time in real seconds at the current speed."""
    return seconds / _speed


def work_seconds(rng: random.Random | None = None) -> float:
    """A random working time: 100 ms to 60 s of demo time, scaled by the speed."""
    return scaled((rng or random).uniform(MIN_WORK, MAX_WORK))


_local = threading.local()


def faker(seed: int | None = None) -> Faker:
    """A Faker of this thread (Faker instances are not shared between threads); seeded if asked."""
    if seed is not None:
        fake = Faker()
        fake.seed_instance(seed)
        return fake
    mine: Faker | None = getattr(_local, "fake", None)
    if mine is None:
        mine = _local.fake = Faker()
    return mine


def amount(fake: Faker, low: float = 5.0, high: float = 900.0) -> float:
    """A money amount with two decimals."""
    return round(float(fake.pyfloat(min_value=low, max_value=high, right_digits=2)), 2)


class DemoError(RuntimeError):
    """What a demo job raises when it "fails": a plausible message from a made-up dependency."""


class DemoWorker(Worker):
    """Base of the demo workers: ``gen()`` builds fake args, ``perform`` works and sometimes fails."""

    failure_rate: ClassVar[float] = FAILURE_RATE
    errors: ClassVar[tuple[str, ...]] = ("Something went wrong!",)
    unique_keys: ClassVar[tuple[str, ...]] = ()  # args that make two jobs the same, for unique inserts

    @classmethod
    def fake_args(cls, fake: Faker) -> dict[str, Any]:
        """Arguments for one job, made with ``fake``."""
        raise NotImplementedError

    @classmethod
    def unique_args(cls, fake: Faker) -> dict[str, Any]:
        """Arguments for a unique job: its ``unique_keys`` come from a small pool, so duplicates happen."""
        return cls.fake_args(fake)

    @classmethod
    def gen(cls, fake: Faker | None = None, **opts: Any) -> JobSpec:
        """A job of this worker with fake args; ``opts`` go to ``Worker.new`` (schedule_in, priority...)."""
        return cls.new(cls.fake_args(fake or faker()), **opts)

    @classmethod
    def unique_opts(cls, period: float = 60.0) -> dict[str, Any]:
        """``unique=`` options that make jobs with the same ``unique_keys`` args one job for ``period``."""
        return {"period": period, "fields": ["worker", "args"], "keys": list(cls.unique_keys)}

    def backoff(self, job: Job) -> float:
        """The engine's backoff (15 + 2**attempt seconds), at demo speed."""
        return scaled(default_backoff(job.attempt))

    def twist(self, job: Job) -> Snooze | Cancel | Discard | None:
        """A worker-specific outcome decided before working (bad input, busy, unwanted); None: work."""
        return None

    def result(self, job: Job) -> Any:
        """What a successful run stores on the job."""
        return {"ok": True}

    def perform(self, job: Job) -> Any:
        twist = self.twist(job)
        if twist is not None:
            return twist
        seconds = work_seconds()
        failing = random.random() < self.failure_rate
        if failing:
            seconds *= random.random()  # fail part of the way through
        if job.wait_cancelled(seconds):
            raise Cancel("stopped while working")
        if failing:
            raise DemoError(random.choice(self.errors))
        return self.result(job)


class WelcomeMailer(DemoWorker, queue="mailers", max_attempts=5, priority=1, tags=["email"]):
    """Sends the welcome e-mail to a new user (the seed's example worker)."""

    errors = ("Something went wrong!", "SMTP 421: too many connections, try again later",
              "SMTP 451: temporary local problem")

    @classmethod
    def fake_args(cls, fake: Faker) -> dict[str, Any]:
        return {"email": fake.email(), "homepage": fake.url(), "username": fake.user_name()}

    def result(self, job: Job) -> Any:
        return {"sent_to": job.args.get("email"), "message_id": f"<{random.getrandbits(48):x}@lysmore.demo>"}


class ReceiptMailer(DemoWorker, queue="mailers", max_attempts=5, priority=1, tags=["email", "billing"]):
    """Sends a payment receipt."""

    errors = ("SMTP 450: mailbox unavailable", "template 'receipt' failed to render: amount is None",
              "Something went wrong!")

    @classmethod
    def fake_args(cls, fake: Faker) -> dict[str, Any]:
        return {
            "email": fake.email(), "name": fake.name(), "amount": amount(fake),
            "currency": fake.random_element(("USD", "EUR", "GBP", "NOK")),
            "invoice": fake.bothify("INV-#####-??").upper(),
        }

    def result(self, job: Job) -> Any:
        return {"sent_to": job.args.get("email"), "invoice": job.args.get("invoice")}


IMAGE_FORMATS = OrderedDict((("jpg", 0.5), ("png", 0.3), ("webp", 0.12), ("gif", 0.05), ("tiff", 0.02),
                             ("heic", 0.01)))


class ImageResizer(DemoWorker, queue="media", max_attempts=3, priority=2, tags=["media", "image"]):
    """Resizes an uploaded image to a few sizes; refuses (discards) formats it cannot read."""

    errors = ("ImageMagick: corrupt JPEG data: premature end of data segment",
              "upload storage returned 503 Service Unavailable", "out of memory resizing 12000x9000")
    UNSUPPORTED = ("tiff", "heic")

    @classmethod
    def fake_args(cls, fake: Faker) -> dict[str, Any]:
        fmt = fake.random_element(IMAGE_FORMATS)
        name = f"{fake.file_name(category='image').rsplit('.', 1)[0]}.{fmt}"
        return {
            "url": f"{fake.url()}uploads/{fake.uuid4()}/{name}", "filename": name, "format": fmt,
            "owner": fake.user_name(), "sizes": sorted(fake.random_elements((64, 128, 256, 512, 1024),
                                                                            length=3, unique=True)),
        }

    def twist(self, job: Job) -> Discard | None:
        if job.args.get("format") in self.UNSUPPORTED:
            return Discard(f"unsupported image format {job.args['format']!r}")
        return None

    def result(self, job: Job) -> Any:
        return {"thumbnails": [f"{s}/{job.args.get('filename')}" for s in job.args.get("sizes", [])]}


class VideoTranscoder(DemoWorker, queue="media", max_attempts=3, priority=3, tags=["media", "video"]):
    """Transcodes an uploaded video; snoozes now and then when the encoder farm is busy."""

    errors = ("ffmpeg exited with status 1: moov atom not found", "encoder node lost during transcode",
              "Something went wrong!")
    SNOOZE_RATE = 0.06

    @classmethod
    def fake_args(cls, fake: Faker) -> dict[str, Any]:
        return {
            "url": f"{fake.url()}videos/{fake.file_name(category='video')}",
            "filename": fake.file_name(category="video"),
            "codec": fake.random_element(("h264", "h265", "vp9", "av1")),
            "resolution": fake.random_element(("480p", "720p", "1080p", "2160p")),
            "owner": fake.user_name(),
        }

    def twist(self, job: Job) -> Snooze | None:
        if random.random() < self.SNOOZE_RATE:
            return Snooze(scaled(random.uniform(5, 30)))
        return None

    def result(self, job: Job) -> Any:
        return {"output": f"{job.args.get('filename', 'video')}.{job.args.get('resolution')}.mp4"}


class ReportExporter(DemoWorker, queue="exports", max_attempts=3, priority=2, tags=["reports"]):
    """Exports an account's report; a report nobody wants any more is cancelled."""

    errors = ("S3 PutObject timed out after 30s", "query canceled due to statement timeout",
              "Something went wrong!")
    unique_keys = ("account_id", "report")
    CANCEL_RATE = 0.03

    @classmethod
    def fake_args(cls, fake: Faker) -> dict[str, Any]:
        return {
            "account_id": fake.random_int(1, 60), "company": fake.company(),
            "report": fake.random_element(("revenue", "churn", "usage", "invoices", "signups")),
            "format": fake.random_element(("csv", "xlsx", "pdf")), "email": fake.company_email(),
        }

    def twist(self, job: Job) -> Cancel | None:
        if random.random() < self.CANCEL_RATE:
            return Cancel("report no longer wanted")
        return None

    def result(self, job: Job) -> Any:
        args = job.args
        return {"file": f"{args.get('report')}-{args.get('account_id')}.{args.get('format')}",
                "rows": random.randint(10, 100_000)}


class EventIngester(DemoWorker, queue="events", max_attempts=2, priority=2, tags=["events"]):
    """Ingests one analytics event; only retried once, so its failures are often discarded."""

    errors = ("malformed event payload: missing 'ts'", "kafka: leader not available",
              "Something went wrong!")

    @classmethod
    def fake_args(cls, fake: Faker) -> dict[str, Any]:
        return {
            "event": fake.random_element(("page_view", "sign_up", "login", "purchase", "logout")),
            "user": fake.user_name(), "ip": fake.ipv4_public(), "url": fake.uri(),
            "at": fake.iso8601(), "agent": fake.user_agent(),
        }


class DataAnalysis(DemoWorker, queue="analysis", max_attempts=4, priority=3, tags=["analysis"]):
    """Crunches a dataset."""

    errors = ("LinAlgError: singular matrix", "MemoryError: unable to allocate 3.2 GiB",
              "dataset checksum mismatch", "Something went wrong!")
    unique_keys = ("dataset",)

    @classmethod
    def fake_args(cls, fake: Faker) -> dict[str, Any]:
        return {
            "dataset": f"{fake.slug()}.{fake.random_element(('csv', 'parquet', 'json'))}",
            "rows": fake.random_int(1_000, 5_000_000), "owner": fake.user_name(),
            "model": fake.random_element(("linear", "kmeans", "arima", "random_forest")),
        }

    @classmethod
    def unique_args(cls, fake: Faker) -> dict[str, Any]:
        nightly = ("orders", "sessions", "payments", "signups", "churn", "inventory")
        return {**cls.fake_args(fake), "dataset": f"nightly/{fake.random_element(nightly)}.parquet"}

    def result(self, job: Job) -> Any:
        return {"score": round(random.random(), 4)}


class InvoiceGenerator(DemoWorker, queue="default", max_attempts=5, priority=2, tags=["billing"]):
    """Generates a customer invoice."""

    errors = ("payment provider returned 502 Bad Gateway", "deadlock detected", "Something went wrong!")

    @classmethod
    def fake_args(cls, fake: Faker) -> dict[str, Any]:
        return {
            "customer": fake.company(), "email": fake.company_email(), "amount": amount(fake, 20, 5000),
            "currency": fake.random_element(("USD", "EUR", "GBP")), "country": fake.country_code(),
        }


class CacheWarmer(DemoWorker, queue="default", max_attempts=3, priority=4, tags=["cache"]):
    """Warms a page cache for a region; also run by cron every minute."""

    errors = ("redis: connection reset by peer", "Something went wrong!")
    unique_keys = ("region",)

    @classmethod
    def fake_args(cls, fake: Faker) -> dict[str, Any]:
        return {"region": fake.random_element(("eu-west", "eu-north", "us-east", "us-west", "ap-south")),
                "pages": fake.random_int(10, 500), "site": fake.domain_name()}


# Every generated worker, with its share of the load (close to what its queue can run at two nodes;
# mailers and media get more than their limits let through, so they visibly pile up).
WORKERS: dict[type[DemoWorker], float] = {
    DataAnalysis: 22.0,
    InvoiceGenerator: 22.0,
    CacheWarmer: 8.0,
    EventIngester: 16.0,
    ReportExporter: 9.0,
    WelcomeMailer: 8.0,
    ReceiptMailer: 6.0,
    ImageResizer: 5.0,
    VideoTranscoder: 3.0,
}

UNIQUE_WORKERS: tuple[type[DemoWorker], ...] = tuple(w for w in WORKERS if w.unique_keys)


def crontab() -> list[CronEntry]:
    """The demo's periodic jobs (run by the leader): warm a cache every minute."""
    return [CronEntry("* * * * *", CacheWarmer, args={"region": "eu-west", "pages": 100, "site": "lysmore.demo"},
                      name="demo-cache-warmer")]

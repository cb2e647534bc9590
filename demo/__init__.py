"""Lysmore's demo: generated workers with fake data, a bursty load, chaos, on the seed's queues.

``lysmore demo`` runs it; ``demo.runner.Demo`` is the same thing as a library. Imports ``engine``
(and Faker) only; the command line hands the interactive mode its dashboard.
"""

from __future__ import annotations

from .chaos import Miscreant, reset_queues
from .load import MIX, LoadGenerator, LoadMix
from .monitor import ErrorMonitor, Tally
from .runner import Demo, DemoOptions, DemoResolver, run, run_headless, run_interactive
from .workers import (
    QUEUES,
    WORKERS,
    CacheWarmer,
    DataAnalysis,
    DemoWorker,
    EventIngester,
    ImageResizer,
    InvoiceGenerator,
    ReceiptMailer,
    ReportExporter,
    VideoTranscoder,
    WelcomeMailer,
    get_speed,
    set_speed,
)

__all__ = [
    "MIX",
    "QUEUES",
    "WORKERS",
    "CacheWarmer",
    "DataAnalysis",
    "Demo",
    "DemoOptions",
    "DemoResolver",
    "DemoWorker",
    "ErrorMonitor",
    "EventIngester",
    "ImageResizer",
    "InvoiceGenerator",
    "LoadGenerator",
    "LoadMix",
    "Miscreant",
    "ReceiptMailer",
    "ReportExporter",
    "Tally",
    "VideoTranscoder",
    "WelcomeMailer",
    "get_speed",
    "reset_queues",
    "run",
    "run_headless",
    "run_interactive",
    "set_speed",
]

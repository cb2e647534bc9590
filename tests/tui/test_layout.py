"""Layout rules for narrow terminals: lines never wrap mid-item, columns go before names are cut."""

from __future__ import annotations

from rich.text import Text

from tui.layout import Col, Item, clip, fit_columns, fit_line, natural_widths
from tui.model import STATES, Count
from tui.presenters import QUEUE_COLUMNS, header_text, nodes_summary, refresh_label, state_summary


def test_a_line_that_fits_is_left_whole() -> None:
    line = fit_line([Item.of("alpha", "a"), Item.of("beta", "b")], 20)
    assert line.plain == "alpha  beta"


def test_items_are_shortened_by_rank_then_dropped_in_order_never_cut() -> None:
    items = [
        Item.of("keep-this-name", "keep…", shrink=2),
        Item.of("counts 12", "c 12", shrink=1),
        Item.of("a long hint", "hint", ""),  # an empty last form: it goes at its rank
        Item.of("extra", drop=1),
    ]
    assert fit_line(items, 45).plain == "keep-this-name  counts 12  a long hint  extra"
    assert fit_line(items, 37).plain == "keep-this-name  counts 12  extra"  # rank 0 first: the hint
    assert fit_line(items, 27).plain == "keep-this-name  c 12  extra"  # the hint went before the name is cut
    assert fit_line(items, 22).plain == "keep…  c 12  extra"
    assert fit_line(items, 12).plain == "keep…  c 12"  # drops are the last resort
    assert fit_line(items, 4).plain == "kee…"  # what is left wider than the line is cut


def test_shortenings_that_are_not_needed_any_more_are_undone() -> None:
    items = [Item.of("database-name", "data…", shrink=1), Item.of("leader-name", "lead…", "", shrink=0)]
    assert fit_line(items, 15, sep=" ").plain == "database-name"  # the leader went whole, the database stays


def test_the_state_summary_fits_80_columns_with_millions_and_never_wraps() -> None:
    states = [(s, Count(3_400_000, exact=False)) for s in STATES]
    line = fit_line(state_summary(states), 78)
    assert line.cell_len <= 78 and "\n" not in line.plain
    assert line.plain.count("~3.4M") == len(STATES)  # every state still there, as glyph and count
    small = fit_line(state_summary([(s, Count(3)) for s in STATES]), 78).plain
    assert "○ available 3" in small and "✓ 3" in small  # finished states shorten first


def test_the_header_keeps_badges_and_refresh_and_shortens_the_leader_first() -> None:
    leader = "ingest-worker-eu-west-1a-7f3c9"
    text = header_text("Queues", "db/test", "demo", 2, leader, ["READ-ONLY"], refresh_label(1.0, None, False), 80)
    assert text.cell_len == 80 and text.plain.endswith("⟳ 1s")
    assert "READ-ONLY" in text.plain and "db/test · demo" in text.plain and "★ingest-worker-" in text.plain
    assert leader not in text.plain  # ellipsised, not clipped
    detail = header_text("Queue analytics-export-nightly", "db/test", "demo", 2, leader, [],
                         refresh_label(1.0, None, False), 80)
    assert "Queue analytics-export-nightly" in detail.plain and "db/test · demo" in detail.plain


def test_the_nodes_summary_drops_the_hint_before_cutting_the_leader() -> None:
    line = fit_line(nodes_summary(3, 2, "ingest-worker-eu-west-1a-7f3c9", "P"), 64, sep=" · ")
    assert line.plain == "3 registered, 2 live · leader ★ ingest-worker-eu-west-1a-7f3c9"


def test_columns_go_in_their_order_before_a_name_is_ellipsised() -> None:
    cols = (Col("name", "name", shrink_to=6), Col("a", "a", drop=2), Col("b", "b", drop=1),
            Col("list", "list", shrink_to=5, shrink_early=True))
    natural = {"name": 20, "a": 8, "b": 8, "list": 30}
    assert fit_columns(cols, natural, 200) == natural
    # the list is cut first, then b goes, then a; the name is whole all along
    assert fit_columns(cols, natural, 50) == {"name": 20, "a": 8, "b": 8, "list": 6}
    assert fit_columns(cols, natural, 35) == {"name": 20, "list": 11}
    # only when nothing else can give is the name ellipsised
    assert fit_columns(cols, natural, 20) == {"name": 11, "list": 5}


def test_queue_columns_at_80_show_a_24_character_name_whole() -> None:
    rows = [("analytics-export-nightly", "█░░░░ 1/10", "~2.4M", "8m00s", "1/1 paused", "▅▅▃▆ ▃▅██ 4", "0",
             "~800k", "~1.2M", "10", "100/1m")]
    widths = fit_columns(QUEUE_COLUMNS, natural_widths(QUEUE_COLUMNS, rows), 79)
    assert widths["queue"] == 24
    assert list(widths)[:4] == ["queue", "exec", "available", "oldest"]
    assert "rate" not in widths and "global" not in widths  # the first to go


def test_clip_ellipsises_text_and_strings() -> None:
    assert clip("abcdef", 4) == "abc…"
    assert clip(Text("abcdef", style="bold"), 4).plain == "abc…"
    assert clip(12, 1) == 12


def test_job_heading_and_queue_summary_keep_long_names_whole_at_80() -> None:
    from tests.tui.test_presenters import detail
    from tui.layout import fit_lines
    from tui.presenters import job_heading, page_status

    job = detail(queue="analytics-export-nightly", worker="app.workers.reporting.NightlyAnalyticsExport",
                 tags=("billing", "nightly"))
    first, second = fit_lines(job_heading(job), 78, sep=" · ").plain.splitlines()
    assert first.endswith("app.workers.reporting.NightlyAnalyticsExport")
    assert second.startswith("queue analytics-export-nightly · attempt")
    narrow = fit_lines(job_heading(job), 46, sep=" · ").plain.splitlines()
    assert narrow[0].endswith("NightlyAnalyticsExport")  # the class name when the path does not fit
    assert "analytics-export-nightly" in narrow[1]  # tags and priority went before the queue was cut
    status = fit_line(page_status(1, 100, True, 0, "queue:analytics-export-nightly worker:Nightly", "retryable"),
                      58, sep=" · ").plain
    assert status.startswith("retryable · page 1 · 100+ shown · filter queue:") and status.endswith("…")

"""The private node in a real process, killed with SIGKILL mid-Stripe-call and mid-workflow: still one of each."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from licensing.mail import SinkHandler
from licensing.sandbox import StripeSandbox

from ..helpers import wait_for
from .nodes import NodeProcess, node_env
from .stack import licensing_stack

pytestmark = pytest.mark.slow


class HoldingSink(SinkHandler):
    """A sink that, while ``holding``, keeps each message's DATA unanswered until released, then refuses it."""

    def __init__(self) -> None:
        super().__init__()
        self.holding = False
        self.held: list[str] = []
        self.released = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        """Hold (and in the end refuse) the message, or accept it."""
        if not self.holding:
            return await super().handle_DATA(server, session, envelope)
        with self.cond:
            self.held.append(envelope.rcpt_tos[0])
            self.cond.notify_all()
        await asyncio.get_running_loop().run_in_executor(None, self.released.wait)
        return "451 4.3.0 not accepted (the sender went away)"

    def wait_held(self, count: int, timeout: float = 30.0) -> list[str]:
        """Block until ``count`` messages are held."""
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.held) >= count, timeout), f"held {self.held}"
            return list(self.held)


def test_kill_9_mid_stripe_call_and_mid_workflow(
    database_url: str, prefix: str, sandbox: StripeSandbox, tmp_path: Path
) -> None:
    sink = HoldingSink()
    with licensing_stack(database_url, prefix, sandbox, start_node=False, sink_handler=sink) as stack:
        env = node_env(stack)
        nodes: list[NodeProcess] = []
        try:
            # 1. The subscription create hangs in Stripe; the node dies while it waits for the answer.
            sandbox.faults.add("slow", path_prefix="/v1/subscriptions", method="POST", delay=1.5)
            nodes.append(NodeProcess("n1", env, tmp_path / "n1.log"))
            account, job = stack.app.sign_up(email="eve@example.com", name="Eve", plan="monthly",
                                             payment_method=stack.payment_method())
            wait_for(lambda: not sandbox.faults.pending(), 30, "the subscription create in flight")
            nodes[0].kill()
            # Stripe finishes the work without us; its webhook starts the workflow anyway.
            wait_for(lambda: sandbox.store.count("subscription") == 1, 10, "the subscription")

            # 2. A new node rescues the update job; the workflow runs until both mails are in flight.
            sink.holding = True
            nodes.append(NodeProcess("n2", env, tmp_path / "n2.log"))
            held = sink.wait_held(2)
            assert sorted(held) == sorted(["eve@example.com", stack.app.settings.team_email])
            assert len(stack.rows("hex_keys")) == 1 and len(stack.rows("licenses")) == 1
            nodes[1].kill()
            sink.holding = False
            sink.released.set()  # the held mails are refused: their sender died before the answer

            # 3. A third node rescues the mail steps and finishes.
            nodes.append(NodeProcess("n3", env, tmp_path / "n3.log"))
            steps = stack.wait_workflows_done(2, timeout=40)  # the subscription's and its first invoice's
            update = stack.wait_completed(job.id, 20)
            assert nodes[2].stop() == 0
        finally:
            sink.released.set()
            for node in nodes:
                if node.proc.poll() is None:
                    node.kill()

        assert sandbox.wait_for_webhooks(10)
        assert sandbox.store.count("customer") == 1 and sandbox.store.count("subscription") == 1
        assert len(sandbox.store.events("customer.subscription.created")) == 1
        assert stack.app.account(account.id).subscription_id == sandbox.store.objects("subscription")[0]["id"]  # type: ignore[union-attr]
        assert any("rescued: node n1" in e["error"] for e in update["errors"])
        created = next(e["workflow_id"] for e in stack.rows("stripe_events") if e["type"] == "customer.subscription.created")
        assert {s["workflow_step"]: s["state"] for s in steps if s["workflow_id"] == created} == dict.fromkeys(
            ["hex", "license", "welcome", "notify"], "completed"
        )
        mailers = [s for s in steps if s["workflow_step"] in ("welcome", "notify")]
        assert all(any("rescued: node n2" in e["error"] for e in s["errors"]) for s in mailers)
        assert len(stack.rows("hex_keys")) == 1 and len(stack.rows("licenses")) == 1
        assert len(stack.mails("Welcome")) == 1 and len(stack.mails("New subscriber")) == 1
        assert len(stack.rows("mails")) == 2
        for name in ("n1", "n2", "n3"):
            text = (tmp_path / f"{name}.log").read_text()
            assert "node n" in text or "running queues" in text  # the log was written
            for secret_name, value in stack.secret.items():
                assert value not in text, f"{secret_name} leaked into {name}'s log"

"""Workflows: jobs inserted together, each step running once the steps it depends on completed."""

from __future__ import annotations

import dataclasses
import re
import uuid
from dataclasses import dataclass, field

from ._errors import InvalidJob
from ._job import JobSpec

STEP_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:\-]{0,63}$")


@dataclass
class _Step:
    name: str
    spec: JobSpec
    deps: tuple[str, ...]
    ignore_cancelled: bool
    ignore_discarded: bool


@dataclass
class Workflow:
    """``Workflow(name=...).add("a", W.new(...)).add("b", W.new(...), deps=["a"])``; insert with insert_all.

    A step waits ``held`` until every dependency completed. A dependency that ends cancelled or
    discarded cancels the step (and its own dependents) unless the step was added with
    ``ignore_cancelled`` / ``ignore_discarded``.
    """

    name: str | None = None
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    _steps: dict[str, _Step] = field(default_factory=dict)

    def add(
        self,
        step: str,
        spec: JobSpec,
        deps: list[str] | tuple[str, ...] = (),
        *,
        ignore_cancelled: bool = False,
        ignore_discarded: bool = False,
    ) -> Workflow:
        """Add a step; returns the workflow so calls chain."""
        if not isinstance(step, str) or not STEP_NAME.match(step):
            raise InvalidJob(f"workflow step name {step!r} is malformed: letters, digits, '_', '.', ':', '-', at most 64")
        if step in self._steps:
            raise InvalidJob(f"workflow {self.name or self.id} already has a step named {step!r}")
        if not isinstance(spec, JobSpec):
            raise InvalidJob(f"workflow step {step!r} needs a JobSpec (from Worker.new), got {type(spec).__name__}")
        if spec.unique is not None:
            raise InvalidJob(f"workflow step {step!r} cannot be a unique job")
        if isinstance(deps, str) or not all(isinstance(d, str) for d in deps):
            raise InvalidJob(f"deps of step {step!r} must be a list of step names, got {deps!r}")
        if step in deps:
            raise InvalidJob(f"workflow step {step!r} depends on itself")
        self._steps[step] = _Step(step, spec, tuple(dict.fromkeys(deps)), ignore_cancelled, ignore_discarded)
        return self

    def validate(self) -> None:
        """Refuse unknown dependencies and cycles, naming them; nothing has been written yet."""
        if not self._steps:
            raise InvalidJob(f"workflow {self.name or self.id} has no steps")
        for step in self._steps.values():
            unknown = [d for d in step.deps if d not in self._steps]
            if unknown:
                raise InvalidJob(f"workflow step {step.name!r} depends on unknown steps {unknown}")
        done: set[str] = set()
        visiting: list[str] = []

        def visit(name: str) -> None:
            if name in done:
                return
            if name in visiting:
                cycle = visiting[visiting.index(name):] + [name]
                raise InvalidJob(f"workflow has a dependency cycle: {' -> '.join(cycle)}")
            visiting.append(name)
            for dep in self._steps[name].deps:
                visit(dep)
            visiting.pop()
            done.add(name)

        for name in self._steps:
            visit(name)

    def specs(self) -> list[JobSpec]:
        """The steps as JobSpecs carrying the workflow's id, name, step and dependencies."""
        self.validate()
        out = []
        for step in self._steps.values():
            meta = dict(step.spec.meta)
            if step.ignore_cancelled or step.ignore_discarded:
                meta["workflow"] = {"ignore_cancelled": step.ignore_cancelled, "ignore_discarded": step.ignore_discarded}
            out.append(
                dataclasses.replace(
                    step.spec, meta=meta, workflow_id=self.id, workflow_name=self.name,
                    workflow_step=step.name, workflow_deps=step.deps,
                )
            )
        return out

    @property
    def steps(self) -> list[str]:
        return list(self._steps)

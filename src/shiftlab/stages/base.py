"""The protocol every stage follows, and the defaults most stages keep.

A stage is one kind of run entry. Over a run, the session calls, for every stage in order:

1. ``check(session)``: cheap checks of its config section against the data and backbone;
2. ``plan(session)``: what it must fix before the run directory exists (a forget set);
3. ``start(session)``: once the run directory exists (files it writes up front);
4. ``entries(session)``: its run entries, in records order;
5. ``jobs(session, parallel)``: its jobs, each after those it depends on;

then, per job, as an executor runs it: ``prepare(session, job)`` (the job's digest, set through
:meth:`Session.settle`; False when it finished in an earlier run) and ``compute(session,
job)`` (its records, with their logits). The session alone finishes a job (writes it).
"""

from __future__ import annotations

from shiftlab.config.sections import EntrySpec
from shiftlab.entries import entry_of
from shiftlab.jobs import Job, Kind
from shiftlab.predictions import Scored
from shiftlab.session import Session
from shiftlab.store import recipe_digest


class Stage:
    """A stage that checks, plans and starts nothing; subclasses give ``name``, ``entries``,
    ``jobs``, ``digest`` (or ``prepare``) and ``compute``."""

    name = ""

    def check(self, session: Session) -> None:
        """Cheap checks of this stage's config against the data and backbone."""

    def plan(self, session: Session) -> None:
        """Work that must happen before the run directory exists."""

    def start(self, session: Session) -> None:
        """Work once the run directory exists, before any job."""

    def entries(self, session: Session) -> list[str]:
        """This stage's run entries, in records order."""
        return []

    def jobs(self, session: Session, parallel: bool) -> list[Job]:
        """This stage's jobs."""
        return []

    def digest(self, session: Session, job: Job) -> str:
        """What the job's results depend on (its dependencies have finished)."""
        raise NotImplementedError

    def prepare(self, session: Session, job: Job) -> bool:
        """Set the job's digest; False when it has nothing to do."""
        return session.settle(job, self.digest(session, job))

    def compute(self, session: Session, job: Job) -> list[Scored]:
        """The job's records, with their logits."""
        raise NotImplementedError


class TargetStage(Stage):
    """Entries that run on earlier entries' predictors (``on:``): a job per entry, after the
    entries it names; its digest holds theirs. Subclasses give ``name``, ``kind``, the entries
    (``specs``), their keys (``key``) and ``compute``."""

    kind: Kind = "adapt"

    def specs(self, session: Session) -> list[EntrySpec]:
        raise NotImplementedError

    def key(self, name: str) -> str:
        raise NotImplementedError

    def targets(self, session: Session, spec: EntrySpec) -> list[str]:
        """The predictors an entry runs on: those it names, with every seed's repeats (default
        every recipe entry)."""
        return session.named_targets(spec.on)

    def entries(self, session: Session) -> list[str]:
        return [self.key(spec.name) for spec in self.specs(session)]

    def jobs(self, session: Session, parallel: bool) -> list[Job]:
        return [
            Job(
                self.key(spec.name),
                self.name,
                self.kind,
                spec,
                sorted({entry_of(t) for t in session.named_targets(spec.on)}),
            )
            for spec in self.specs(session)
        ]

    def digest(self, session: Session, job: Job) -> str:
        job.targets = self.targets(session, job.spec)
        deps = [session.digests[entry_of(t)] for t in job.targets]
        return recipe_digest(job.spec, deps, session.extra)

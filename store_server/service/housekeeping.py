"""Retention: the inbox and the dead-letter table do not grow without bound.

Processed inbox rows and dead letters older than their retention are deleted in bounded batches, one
short transaction each, so a big prune never holds a long lock. What the store still needs is never
deleted:

- a row not yet decided (``processed`` false);
- the newest row of every node: the watermarks are rebuilt from it after a restart;
- anything in the last ``keep_event_s`` of event time before the newest message: recovery rebuilds
  the track history and the visit-timeout sightings from there;
- anything younger than the retention by arrival time *and* by event time. A message can be stored
  again once its row is gone (the inbox is also the dedup table), so the inbox retention is never
  shorter than the oldest message age ingest accepts: a late duplicate of a pruned message is refused
  as too old instead of being decided twice.

Run by ``walkout maintenance prune`` and, every ``interval_s`` of wall time, by :class:`Housekeeper`
from the decision worker (so on SQLite it never competes with the ingest for the single writer).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from store_server.service.ports import Clock, UnitOfWork

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetentionPolicy:
    inbox_retention_s: float = 86400.0
    dead_letter_retention_s: float = 7 * 86400.0
    keep_event_s: float = 1800.0 + 120.0 + 600.0  # visit timeout + track horizon + a margin
    batch_rows: int = 2000  # ~0.15 s per batch on PostgreSQL, less on SQLite (measured)


@dataclass
class PruneReport:
    inbox_rows: int = 0
    inbox_batches: int = 0
    dead_letters: int = 0
    dead_letter_batches: int = 0
    dry_run: bool = False
    more: bool = False  # stopped at max_batches with rows left to delete

    def __str__(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        return (
            f"inbox: {verb} {self.inbox_rows} processed rows ({self.inbox_batches} batches); "
            f"dead letters: {verb} {self.dead_letters} ({self.dead_letter_batches} batches)"
            + ("; more left for the next run" if self.more else "")
        )


def _in_batches(
    uow_factory: Callable[[], UnitOfWork],
    delete: Callable[[UnitOfWork], int],
    policy: RetentionPolicy,
    max_batches: int | None,
) -> tuple[int, int, bool]:
    """Run ``delete`` (one batch) in its own transaction until it deletes less than a full batch:
    (rows, batches, whether max_batches stopped it with rows left)."""
    rows = batches = 0
    while max_batches is None or batches < max_batches:
        with uow_factory() as uow:
            n = delete(uow)
            uow.commit()
        rows += n
        batches += 1 if n else 0
        if n < policy.batch_rows:
            return rows, batches, False
    return rows, batches, True


def inbox_cutoffs(uow: UnitOfWork, policy: RetentionPolicy, now: float) -> tuple[float, float] | None:
    """(received_before, ts_before) for the inbox, or None when it is empty."""
    newest = max(uow.inbox.node_watermarks().values(), default=None)
    if newest is None:
        return None
    received_before = now - policy.inbox_retention_s
    return received_before, min(received_before, newest - policy.keep_event_s)


def prune(
    uow_factory: Callable[[], UnitOfWork],
    policy: RetentionPolicy,
    now: float,
    *,
    dry_run: bool = False,
    max_batches: int | None = None,
) -> PruneReport:
    """Delete what the policy lets go, ``policy.batch_rows`` per transaction (at most ``max_batches``
    per table); with ``dry_run``, only count it."""
    report = PruneReport(dry_run=dry_run)
    with uow_factory() as uow:
        cutoffs = inbox_cutoffs(uow, policy, now)
        letters_before = now - policy.dead_letter_retention_s
        if dry_run:
            report.inbox_rows = uow.inbox.count_prunable(*cutoffs) if cutoffs else 0
            report.dead_letters = uow.dead_letters.count_before(letters_before)
            report.inbox_batches = -(-report.inbox_rows // policy.batch_rows)
            report.dead_letter_batches = -(-report.dead_letters // policy.batch_rows)
            return report
    if cutoffs is not None:
        received_before, ts_before = cutoffs
        report.inbox_rows, report.inbox_batches, more = _in_batches(
            uow_factory,
            lambda uow: uow.inbox.prune_processed(received_before, ts_before, policy.batch_rows),
            policy,
            max_batches,
        )
        report.more |= more
    report.dead_letters, report.dead_letter_batches, more = _in_batches(
        uow_factory,
        lambda uow: uow.dead_letters.prune(letters_before, policy.batch_rows),
        policy,
        max_batches,
    )
    report.more |= more
    return report


class Housekeeper:
    """The periodic prune, run by the decision worker between batches (:meth:`tick`).

    Each tick deletes at most ``max_batches`` batches per table, so a backlog (a first run on an old
    database) costs the worker a bounded pause per batch and is worked off over the next ticks, one
    ``backlog_pause_s`` apart, instead of one long stall."""

    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        clock: Clock,
        policy: RetentionPolicy,
        interval_s: float = 300.0,
        max_batches: int = 1,
        backlog_pause_s: float = 5.0,
    ) -> None:
        self.uow_factory, self.clock, self.policy = uow_factory, clock, policy
        self.interval_s, self.max_batches, self.backlog_pause_s = interval_s, max_batches, backlog_pause_s
        self.next_at = float("-inf")  # the first batch after a start prunes
        self.last: PruneReport | None = None

    def tick(self) -> PruneReport | None:
        now = self.clock.now()
        if now < self.next_at:
            return None
        try:
            report = prune(self.uow_factory, self.policy, now, max_batches=self.max_batches)
        except Exception:  # housekeeping must never stop the ingest; the next tick tries again
            logger.exception("housekeeping failed; next try in %.0f s", self.interval_s)
            self.next_at = now + self.interval_s
            return None
        self.next_at = now + (self.backlog_pause_s if report.more else self.interval_s)
        if report.inbox_rows or report.dead_letters:
            logger.info("housekeeping: %s", report)
        self.last = report
        return report

"""The rollout outbox: how the executor records the events it must not lose.

A transition is saved in the desired-state store together with its ledger
events (``Outbox.save_rollout_with_events``, one transaction); the events are
then appended to the ledger with their idempotency keys
(``OnceAppender.append_once``) and cleared from the store. A crash (kill -9)
after the save leaves them in the outbox; the next ``flush`` (at the start of
every tick and every operation of the executor, and in the controller's idle
loop) appends them. A crash after the append but before the clear makes the next
flush find every key already in the ledger, so it appends nothing twice.

Ordering: a flush appends every pending row, by ``seq``, in one ledger
transaction, and a row leaves the outbox only once its event is in the ledger.
So for two rows saved one after the other, the first one's event is never
after the second's, whichever controller (or thread) flushes them, and every
outbox event of a transition is in the ledger before any event the executor
records directly after it (route changes, decommissions: each of those comes
after a flush). docs/ledger.md, "The rollout outbox".
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from kiln.core.ledger.events import EventDraft
from kiln.core.ledger.outbox import with_key
from kiln.core.rollout.planner import RolloutState
from kiln.ports.ledger import OnceAppender
from kiln.ports.state import Outbox


class EventOutbox:
    def __init__(self, *, store: Outbox, ledger: OnceAppender) -> None:
        self._store = store
        self._ledger = ledger
        # One flush at a time in this process (every executor of a controller shares
        # this object); another process flushing the same rows is made harmless by
        # the keys, this lock only saves the duplicate work.
        self._flushing = threading.Lock()

    def save(self, state: RolloutState, drafts: Sequence[EventDraft], *, epoch: int | None) -> None:
        """The transition and its events, in one transaction (fenced by ``epoch``)."""
        self._store.save_rollout_with_events(state, drafts, epoch=epoch)

    def flush(self) -> int:
        """Append every pending event to the ledger, in order, then clear them; the
        number of rows flushed (0 when the outbox was empty: one cheap read)."""
        with self._flushing:
            pending = self._store.pending_events()
            if not pending:
                return 0
            self._ledger.append_once([with_key(p.draft, p.key) for p in pending])
            self._store.clear_events([p.seq for p in pending])
            return len(pending)

"""Transaction verification state of one partition's producers (KIP-890 part 1; Kafka's
``VerificationGuard`` and ``VerificationStateEntry``).

Before a producer's first transactional batch in a partition is appended, the leader asks
the transaction coordinator whether the partition is in the producer's transaction. The
question takes a round trip, and meanwhile the transaction may end: a marker written to
the partition, and a new transaction begun that does not include it. A "yes" that
arrives after that marker must not let the batch in, or it would open a transaction no
coordinator knows of (a hanging transaction, holding the last stable offset forever).

So each verification gets a ``VerificationGuard``, a token unique to it, kept in the
partition's producer state while the question is out. Any transactional batch of the
producer (a data batch, which opens the transaction, or an end marker, which closes it)
clears the state; the batch is appended only if the token it was verified under is still
the producer's current one, or if the producer has an open transaction by then.

The entry also keeps the lowest sequence among the batches waiting on it: a batch with a
higher sequence of the same epoch is refused with OUT_OF_ORDER_SEQUENCE_NUMBER while it
exists, so that a later batch verified first cannot overtake an earlier one that must be
retried (the producer has no state in the partition yet, so nothing else would catch
it). Entries are dropped after ``producer.id.expiration.ms`` with idle producers.

In memory only, never in a snapshot; not thread-safe (the owning log serialises calls).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Final

_guard_ids = itertools.count(1)


class VerificationGuard:
    """An opaque token naming one verification; compared by identity."""

    __slots__ = ("_id",)

    def __init__(self) -> None:
        self._id: Final = next(_guard_ids)

    def __repr__(self) -> str:
        return f"VerificationGuard({self._id})"


@dataclass(slots=True)
class VerificationStateEntry:
    """A producer's verification in progress in one partition."""

    timestamp: int
    """When it was created (milliseconds), for expiry."""
    lowest_sequence: int
    epoch: int
    guard: VerificationGuard = field(default_factory=VerificationGuard)

    def maybe_update_lowest_sequence_and_epoch(self, sequence: int, epoch: int) -> None:
        """Another batch waits on this verification: keep the lowest sequence of the
        newest epoch (a new epoch restarts the sequences)."""
        if epoch == self.epoch and sequence < self.lowest_sequence:
            self.lowest_sequence = sequence
        if epoch > self.epoch:
            self.epoch = epoch
            self.lowest_sequence = sequence

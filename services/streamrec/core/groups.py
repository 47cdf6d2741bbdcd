"""Serving groups: which group owns a user, and which partitions of the interactions topic it reads.

A partition of the interactions topic is a user shard (``core/events/partitioning.py``: the
Java client's murmur2 of the user id). With ``groups`` serving groups over ``partitions``
partitions, group ``g`` owns the partitions ``p`` with ``p % groups == g``, and so the users
whose partition it owns:

    partition = toPositive(murmur2(utf8(user))) % partitions
    group     = partition % groups

A client that wants to skip the forwarding hop computes the same two lines (docs/groups.md).
The modulo keeps each group's share within one partition of even for any partition count, and
group ``g`` always owns partition ``g`` (``g < groups <= partitions``): a message meant for every
group (an item erasure) goes to partitions ``0 .. groups-1``.

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streamrec.core.events.partitioning import UserPartitions

__all__ = ["GroupLayout"]


@dataclass(frozen=True)
class GroupLayout:
    """``groups`` serving groups over ``partitions`` partitions; this process is group ``group``.

    Raises
    ------
    ValueError
        If ``groups`` < 1, ``group`` is not in ``[0, groups)``, or ``partitions`` < ``groups``
        (a group would own no partition).
    """

    groups: int = 1
    group: int = 0
    partitions: int = 1
    #: Each user's partition, remembered (a dict hit is ~80x cheaper than the hash in Python).
    _users: UserPartitions = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.groups < 1:
            raise ValueError(f"groups must be >= 1, got {self.groups}")
        if not 0 <= self.group < self.groups:
            raise ValueError(f"group must be in [0, {self.groups}), got {self.group}")
        if self.partitions < self.groups:
            raise ValueError(f"{self.groups} groups need at least as many partitions, got "
                             f"{self.partitions}")
        object.__setattr__(self, "_users", UserPartitions(self.partitions))

    @property
    def sharded(self) -> bool:
        """More than one group: requests and events are split by user."""
        return self.groups > 1

    def partition_of(self, user: str) -> int:
        """The partition ``user``'s events belong to (`partition_for`, remembered)."""
        return self._users.partition(user)

    def owner(self, user: str) -> int:
        """The group that owns ``user``; 0 for everyone with one group (no hash computed)."""
        if self.groups == 1:
            return 0
        return self._users.partition(user) % self.groups

    def owns(self, user: str) -> bool:
        """Whether this group owns ``user``."""
        return self.owner(user) == self.group

    def partitions_of(self, group: int) -> tuple[int, ...]:
        """The partitions group ``group`` reads, ascending."""
        return tuple(range(group, self.partitions, self.groups))

    @property
    def owned(self) -> tuple[int, ...]:
        """The partitions this group reads."""
        return self.partitions_of(self.group)

    def owns_partition(self, partition: int) -> bool:
        return partition % self.groups == self.group and partition < self.partitions

    def split(self, users: list[str]) -> dict[int, list[str]]:
        """``users`` by owning group, each list in the given order."""
        out: dict[int, list[str]] = {}
        for user in users:
            out.setdefault(self.owner(user), []).append(user)
        return out

    def erasure_partitions(self, kind: str, ident: str) -> tuple[int | None, ...]:
        """Where an erasure record goes so that every group reads it once: (None,) with one
        group (the key's partition; everyone reads every partition). Every group holds state
        of any user and item (the impressions every worker reads, the catalogue), so each
        gets a copy: an item's on partitions ``0 .. groups-1`` (group g reads partition g); a
        user's on the user's own partition (its owner, in order with the user's events) and
        on partition g for every other group g."""
        if not self.sharded:
            return (None,)
        if kind != "user":
            return tuple(range(self.groups))
        owner = self.owner(ident)
        return (self.partition_of(ident),
                *(g for g in range(self.groups) if g != owner))

"""The change set: what one run will do, in the order apply performs it."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from roster.domain.pairs import EMPTY, PairRuns
from roster.domain.records import (
    NO_USERS,
    CachedGroup,
    CachedUser,
    DirectoryGroup,
    DirectoryUser,
    KeyedRecords,
    Skipped,
)


class ChangeKind(StrEnum):
    USER_CREATED = "user_created"
    USER_UPDATED = "user_updated"
    USER_REMOVED = "user_removed"  # gone from the directory: kept, made inactive
    GROUP_CREATED = "group_created"
    GROUP_UPDATED = "group_updated"
    GROUP_DELETED = "group_deleted"
    MEMBER_ADDED = "member_added"
    MEMBER_REMOVED = "member_removed"
    SKIPPED = "skipped"
    NOTE = "note"


@dataclass(frozen=True, slots=True)
class UserUpdate:
    previous: CachedUser
    record: DirectoryUser

    @property
    def deactivates(self) -> bool:
        return self.previous.active and self.previous.present and not self.record.active


@dataclass(frozen=True, slots=True)
class GroupUpdate:
    previous: CachedGroup
    record: DirectoryGroup


@dataclass(frozen=True)
class ChangeSet:
    users_created: KeyedRecords = NO_USERS  # any sequence of users given becomes KeyedRecords
    users_updated: tuple[UserUpdate, ...] = ()
    users_removed: tuple[CachedUser, ...] = ()
    groups_created: tuple[DirectoryGroup, ...] = ()
    groups_updated: tuple[GroupUpdate, ...] = ()
    groups_deleted: tuple[CachedGroup, ...] = ()
    # (group external id, member external id), sorted; any collection of pairs given becomes runs
    members_added: PairRuns = EMPTY
    members_removed: PairRuns = EMPTY
    skipped: tuple[Skipped, ...] = field(default=())
    ignored_members: int = 0
    foreign_members: int = 0
    # group external id -> digest of its member set after this change set, for the groups whose
    # stored digest must change (full runs); an incremental run's changed groups get None
    member_hashes: Mapping[str, str] = field(default_factory=dict)
    # users whose content is unchanged but whose entry fingerprint is new: Roster id -> fingerprint
    # (stored silently, so that the next read can skip decoding them)
    source_hashes: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "users_created", KeyedRecords.of(self.users_created))
        for name in ("members_added", "members_removed"):
            object.__setattr__(self, name, PairRuns.of(getattr(self, name)))

    @property
    def notes(self) -> tuple[str, ...]:
        notes = []
        if self.ignored_members:
            notes.append(f"{self.ignored_members} group member(s) outside the search paths were ignored")
        if self.foreign_members:
            notes.append(f"{self.foreign_members} foreign security principal(s) were ignored")
        return tuple(notes)

    @property
    def deactivations(self) -> int:
        """Users active before this run that it makes inactive."""
        removed = sum(1 for u in self.users_removed if u.active)
        return removed + sum(1 for u in self.users_updated if u.deactivates)

    def digest(self) -> str:
        """A fingerprint of exactly what this change set does (to approve that and nothing else)."""
        parts: list[str] = []
        parts += [f"uc:{u.external_id}:{u.content_hash}" for u in self.users_created]
        parts += [f"uu:{u.record.external_id}:{u.record.content_hash}" for u in self.users_updated]
        parts += [f"ur:{u.external_id}" for u in self.users_removed]
        parts += [f"gc:{g.external_id}:{g.content_hash}" for g in self.groups_created]
        parts += [f"gu:{g.record.external_id}:{g.record.content_hash}" for g in self.groups_updated]
        parts += [f"gd:{g.external_id}" for g in self.groups_deleted]
        parts += [f"ma:{g}:{m}" for g, m in self.members_added]
        parts += [f"mr:{g}:{m}" for g, m in self.members_removed]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()

    @property
    def is_empty(self) -> bool:
        return not any(
            (
                self.users_created,
                self.users_updated,
                self.users_removed,
                self.groups_created,
                self.groups_updated,
                self.groups_deleted,
                self.members_added,
                self.members_removed,
            )
        )

    def counts(self) -> dict[str, int]:
        return {
            ChangeKind.USER_CREATED: len(self.users_created),
            ChangeKind.USER_UPDATED: len(self.users_updated),
            ChangeKind.USER_REMOVED: len(self.users_removed),
            ChangeKind.GROUP_CREATED: len(self.groups_created),
            ChangeKind.GROUP_UPDATED: len(self.groups_updated),
            ChangeKind.GROUP_DELETED: len(self.groups_deleted),
            ChangeKind.MEMBER_ADDED: len(self.members_added),
            ChangeKind.MEMBER_REMOVED: len(self.members_removed),
            ChangeKind.SKIPPED: len(self.skipped),
            "ignored_members": self.ignored_members,
            "foreign_members": self.foreign_members,
        }

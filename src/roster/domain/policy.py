"""The deletion guard: never act on an empty or truncated read of a directory."""

from __future__ import annotations

from dataclasses import dataclass

from roster.domain.changes import ChangeSet
from roster.domain.records import CachedState


@dataclass(frozen=True, slots=True)
class DeletionGuard:
    """Stop a run that would deactivate every active user, or more than ``max_share``
    of them when that is at least ``min_count`` users."""

    max_share: float = 0.10
    min_count: int = 10

    def check(self, changes: ChangeSet, cached: CachedState) -> str | None:
        """None when the run may apply, else the reason it must not."""
        active = cached.active_users
        deactivating = changes.deactivations
        if active == 0 or deactivating == 0:
            return None
        if deactivating >= active:
            return (
                f"deletion guard: this run would deactivate all {active} active users; "
                "an empty or truncated directory read is refused (check the search paths "
                "and the bind account's rights, then review the held run)"
            )
        share = deactivating / active
        if deactivating >= self.min_count and share > self.max_share:
            return (
                f"deletion guard: this run would deactivate {deactivating} of {active} active "
                f"users ({share:.0%}), more than the allowed {self.max_share:.0%}; "
                "nothing was applied; the run is held for review"
            )
        return None

"""The state of an emulated Microsoft Entra tenant: users, groups, memberships, and a journal
of every change from which Microsoft Graph delta pages are computed.

Delta semantics follow Microsoft's "Use delta query to track changes in Microsoft Graph data",
"Get incremental changes for users" and "Get incremental changes for groups" (learn.microsoft.com,
graph/delta-query-overview, delta-query-users, delta-query-groups) and the reference pages
"user: delta" and "group: delta":

- a first round lists every object with the selected properties; a group's members come as
  ``members@delta`` (``{"@odata.type": "#microsoft.graph.user", "id": ...}``) and a group with
  many members appears again on later pages with the rest (no order is promised);
- a later round lists only what changed: an updated object by its id "with at least the
  updated properties" (here: exactly those), a new or restored one whole, a deleted one as
  ``{"id": ..., "@removed": {"reason": "changed"}}`` (soft-deleted, restorable for 30 days) or
  ``"deleted"`` (gone for good); membership changes as ``members@delta`` entries, removals
  carrying ``"@removed": {"reason": "deleted"}``;
- deleting a user (softly) takes it out of its groups, and restoring it puts it back: both
  show as membership changes of those groups, as in Entra.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import Any

USER_TYPE = "#microsoft.graph.user"
GROUP_TYPE = "#microsoft.graph.group"
DEVICE_TYPE = "#microsoft.graph.device"
_ids = itertools.count(1)


def new_guid() -> str:
    n = next(_ids)
    return f"{n:08x}-0000-4000-8000-{n:012x}"


@dataclass
class _Object:
    kind: str  # "users" or "groups"
    props: dict[str, Any]
    deleted: str | None = None  # None, "changed" (soft-deleted) or "deleted"


@dataclass
class _Change:
    version: int
    object_id: str
    props: frozenset[str] = frozenset()  # the properties this change set
    member: tuple[str, str] | None = None  # (member id, its @odata.type) added or removed


@dataclass
class Tenant:
    """One tenant; every method is safe to call while the emulator serves."""

    tenant_id: str = field(default_factory=new_guid)
    objects: dict[str, _Object] = field(default_factory=dict)
    members: dict[str, dict[str, str]] = field(default_factory=dict)  # group -> member id -> type
    journal: list[_Change] = field(default_factory=list)
    version: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock)

    # Changing the tenant
    def put_user(self, props: dict[str, Any], user_id: str | None = None) -> str:
        return self._put("users", props, user_id)

    def put_group(self, props: dict[str, Any], group_id: str | None = None) -> str:
        return self._put("groups", props, group_id)

    def _put(self, kind: str, props: dict[str, Any], object_id: str | None) -> str:
        with self.lock:
            object_id = object_id or new_guid()
            found = self.objects.get(object_id)
            if found is None or found.deleted:
                self.objects[object_id] = _Object(kind, dict(props))
                if kind == "groups":
                    self.members.setdefault(object_id, {})
                self._note(object_id, frozenset(props) | {"*"})
            else:
                changed = {k for k, v in props.items() if found.props.get(k) != v}
                found.props.update(props)
                if changed:
                    self._note(object_id, frozenset(changed))
            return object_id

    def add_member(self, group_id: str, member_id: str, odata_type: str | None = None) -> None:
        with self.lock:
            kind = odata_type or (GROUP_TYPE if self._kind(member_id) == "groups" else USER_TYPE)
            if member_id not in self.members[group_id]:
                self.members[group_id][member_id] = kind
                self._note(group_id, member=(member_id, kind))

    def remove_member(self, group_id: str, member_id: str) -> None:
        with self.lock:
            kind = self.members[group_id].pop(member_id, None)
            if kind is not None:
                self._note(group_id, member=(member_id, kind))

    def delete(self, object_id: str, *, permanently: bool = False) -> None:
        """Soft-delete (``changed``) or delete for good; a deleted user leaves its groups (noted as
        membership changes, kept aside so that a restore puts them back)."""
        with self.lock:
            found = self.objects[object_id]
            found.deleted = "deleted" if permanently else "changed"
            self._note(object_id, frozenset({"@removed"}))
            for group_id, listed in self.members.items():
                if object_id in listed:
                    kind = listed.pop(object_id)
                    found.props.setdefault("_memberOf", []).append((group_id, kind))
                    self._note(group_id, member=(object_id, kind))
            if found.kind == "groups":
                self.members[object_id] = {}

    def restore(self, object_id: str) -> None:
        with self.lock:
            found = self.objects[object_id]
            if found.deleted != "changed":
                raise ValueError(f"{object_id}: only a soft-deleted object can be restored")
            found.deleted = None
            self._note(object_id, frozenset(found.props) | {"*"})
            for group_id, kind in found.props.pop("_memberOf", []):
                if group_id in self.members and not self.objects[group_id].deleted:
                    self.members[group_id][object_id] = kind
                    self._note(group_id, member=(object_id, kind))

    def _kind(self, object_id: str) -> str:
        found = self.objects.get(object_id)
        return found.kind if found else "other"

    def _note(
        self, object_id: str, props: frozenset[str] = frozenset(), member: tuple[str, str] | None = None
    ) -> None:
        self.version += 1
        self.journal.append(_Change(self.version, object_id, props, member))

    # Reading it as Graph does
    def visible(self, kind: str, object_id: str) -> dict[str, Any] | None:
        found = self.objects.get(object_id)
        if found is None or found.kind != kind or found.deleted:
            return None
        return {"id": object_id, **{k: v for k, v in found.props.items() if not k.startswith("_")}}

    def member_of(self, user_id: str) -> list[str]:
        """The live groups that list ``user_id`` directly."""
        with self.lock:
            return sorted(
                g for g, listed in self.members.items() if user_id in listed and not self.objects[g].deleted
            )

    def full_round(self, kind: str) -> list[dict[str, Any]]:
        """Every live object of ``kind``, groups with their members as ``members@delta``."""
        with self.lock:
            out = []
            for object_id in list(self.objects):
                item = self.visible(kind, object_id)
                if item is None:
                    continue
                item["_complete"] = True
                if kind == "groups":
                    item["members@delta"] = [
                        {"@odata.type": t, "id": m} for m, t in self.members[object_id].items()
                    ]
                out.append(item)
            return out

    def changes_since(self, kind: str, version: int) -> list[dict[str, Any]]:
        """What changed after ``version``: partial objects, removals and member changes."""
        with self.lock:
            touched: dict[str, set[str]] = {}
            member_changes: dict[str, dict[str, str]] = {}
            for change in self.journal[version:]:  # the journal's n-th entry is version n + 1
                if self._kind(change.object_id) != kind:
                    continue
                touched.setdefault(change.object_id, set()).update(change.props)
                if change.member is not None:
                    member_changes.setdefault(change.object_id, {})[change.member[0]] = change.member[1]
            return [
                self._changed(kind, oid, props, member_changes.get(oid, {})) for oid, props in touched.items()
            ]

    def _changed(
        self, kind: str, object_id: str, props: set[str], member_changes: dict[str, str]
    ) -> dict[str, Any]:
        found = self.objects[object_id]
        if found.deleted:
            return {"id": object_id, "@removed": {"reason": found.deleted}}
        current = self.visible(kind, object_id) or {}
        item = (
            {**current, "_complete": True}
            if "*" in props
            else {"id": object_id, **{p: current.get(p) for p in props if p in current}}
        )
        if member_changes:
            listed = self.members.get(object_id, {})
            item["members@delta"] = [
                {"@odata.type": t, "id": m}
                if m in listed
                else {"@odata.type": t, "id": m, "@removed": {"reason": "deleted"}}
                for m, t in member_changes.items()
            ]
        return item

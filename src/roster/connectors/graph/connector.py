"""Entra ID through Graph delta queries: a full read is a first delta round of users and groups,
an incremental run follows the stored delta links.

The cursor is ``{"users": deltaLink, "groups": deltaLink}``. In a round, ``@odata.nextLink`` is
followed to the ``@odata.deltaLink``; a group's ``members@delta`` may span several appearances
(merged, in any order). An incremental round gives partial objects (an updated object carries
only what changed): those are read again whole (``GET /users/{id}``) before they become records;
member changes become membership operations, never a reload of the group.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from roster.connectors.base import ConnectionReport, ConnectorError, FailureReason, PathCheck, Progress
from roster.connectors.graph.client import DeltaExpired, GraphClient
from roster.connectors.graph.config import GROUP_SELECT, USER_SELECT, GraphConfig
from roster.connectors.graph.decode import group_record, member_entries, user_record
from roster.connectors.spool import UserSpool
from roster.domain.delta import Delta, MemberOp, MemberOpKind
from roster.domain.records import DirectoryGroup, DirectoryUser, Skipped, Snapshot
from roster.domain.snapshot import SnapshotBuilder

_USER_FIELDS = tuple(USER_SELECT.split(","))
_GROUP_FIELDS = ("displayName", "description")
# a change to one of these may make a user provisionable again (an address, or enabled)
_RETURN_FIELDS = frozenset({"mail", "otherMails", "userPrincipalName", "accountEnabled"})


class GraphConnector:
    def __init__(self, config: GraphConfig) -> None:
        self.config = config
        self.client: GraphClient  # made for each call (``_connected``)

    @contextmanager
    def _connected(self) -> Iterator[GraphClient]:
        """A client for one call (its connections closed after; its token lives as long)."""
        self.client = GraphClient(self.config)
        try:
            yield self.client
        finally:
            self.client.close()

    def test(self) -> ConnectionReport:
        """A token, then one user and one group (each needs its permission)."""
        with self._connected():
            return self._test()

    def _test(self) -> ConnectionReport:
        server = self.config.graph_url
        try:
            self.client.token(fresh=True)
        except ConnectorError as exc:
            return ConnectionReport(False, server, str(exc))
        checks = []
        for kind in ("users", "groups"):
            try:
                self.client.get(kind, {"$top": "1", "$select": "id"})
                checks.append(PathCheck(kind, True, "readable"))
            except ConnectorError as exc:
                checks.append(PathCheck(kind, False, str(exc)))
        ok = all(c.ok for c in checks)
        return ConnectionReport(
            ok, server, "token acquired" if ok else "token acquired; a read failed", tuple(checks)
        )

    def snapshot(
        self, progress: Progress | None = None, previous: Mapping[str, str] | None = None
    ) -> Snapshot:
        with self._connected():
            return self._snapshot(progress)

    def changes(self, cursor: str, progress: Progress | None = None) -> Delta | None:
        with self._connected():
            return self._changes(cursor, progress)

    def _snapshot(self, progress: Progress | None) -> Snapshot:
        builder = SnapshotBuilder(UserSpool())
        try:
            users_link = self._read_users(builder, progress)
            groups_link = self._read_groups(builder, progress)
        except DeltaExpired as exc:  # a first round has no delta token to expire
            raise ConnectorError(
                FailureReason.SEARCH_FAILED, f"Graph refused a first delta round: {exc}"
            ) from None
        cursor = json.dumps({"users": users_link, "groups": groups_link})
        return replace(builder.build(), cursor=cursor)

    def _read_users(self, builder: SnapshotBuilder, progress: Progress | None) -> str:
        """Decoded page by page: a page's JSON is dropped once its users are records."""

        def take(items: list[dict[str, Any]]) -> None:
            for item in items:
                if "@removed" in item:
                    continue
                record = user_record(item, self.config)
                if isinstance(record, Skipped):
                    builder.add_skipped(record)
                else:
                    builder.add_user(record)

        return self._walk("users/delta", {"$select": USER_SELECT}, progress, take)

    def _read_groups(self, builder: SnapshotBuilder, progress: Progress | None) -> str:
        """Groups may come back on later pages with more members: merged, keeping member ids only."""
        props: dict[str, dict[str, Any]] = {}
        members: dict[str, list[str]] = {}

        def take(items: list[dict[str, Any]]) -> None:
            for item in items:
                if "@removed" in item:
                    continue
                gid = str(item["id"])
                found = props.setdefault(gid, {})  # a later appearance may carry only members (or nulls)
                found.update(
                    {
                        k: v
                        for k, v in item.items()
                        if k != "members@delta" and (v is not None or k not in found)
                    }
                )
                members.setdefault(gid, []).extend(m for m, _, removed in member_entries(item) if not removed)

        link = self._walk("groups/delta", {"$select": GROUP_SELECT}, progress, take)
        for gid, item in props.items():
            builder.add_group(group_record(item, self.config, tuple(members.pop(gid))))
        return link

    def _walk(
        self,
        path: str,
        params: dict[str, str] | None,
        progress: Progress | None,
        take: Callable[[list[dict[str, Any]]], None],
    ) -> str:
        """Hand every page's items to ``take``; return the round's delta link."""
        seen = 0
        for page in self._pages(path, params):
            items = page.get("value", [])
            take(items)
            seen += len(items)
            if progress:
                progress(seen)
            if "@odata.deltaLink" in page:
                return str(page["@odata.deltaLink"])
        raise ConnectorError(FailureReason.SEARCH_FAILED, f"Graph ended {path} without a delta link")

    def _round(self, link: str, progress: Progress | None) -> tuple[list[dict[str, Any]], str]:
        """Every item of an incremental round (small: what changed), and its delta link."""
        items: list[dict[str, Any]] = []
        return items, self._walk(link, None, progress, items.extend)

    def _pages(self, url: str, params: dict[str, str] | None) -> Iterator[dict[str, Any]]:
        page = self.client.get(url, params)
        yield page
        while "@odata.nextLink" in page:
            page = self.client.get(str(page["@odata.nextLink"]))
            yield page

    def _changes(self, cursor: str, progress: Progress | None) -> Delta | None:
        links = _links(cursor)
        if links is None:
            return None
        try:
            user_items, users_link = self._round(links["users"], progress)
            group_items, groups_link = self._round(links["groups"], progress)
            users, skipped, removed, parents = self._changed_users(user_items)
            groups, ops, gone = self._changed_groups(group_items)
        except DeltaExpired:
            return None  # the delta token expired (7 days) or was refused: read everything again
        return Delta(
            cursor=json.dumps({"users": users_link, "groups": groups_link}),
            users=users,
            groups=groups,
            member_of=parents,
            removed=frozenset(removed | gone),
            skipped=tuple(skipped),
            member_ops=tuple(ops),
        )

    def _changed_users(
        self, items: list[dict[str, Any]]
    ) -> tuple[dict[str, DirectoryUser], list[Skipped], set[str], dict[str, tuple[str, ...]]]:
        """Records of the users a round names (partial ones read again whole, 15 per request:
        the most an ``id in (...)`` filter takes), the ids that left, and the parent groups of the
        users that may come back (new, restored, or with a changed address or state): the cache
        let their memberships go while they were not synced."""
        removed = {str(i["id"]) for i in items if "@removed" in i}
        listed = [i for i in items if "@removed" not in i]
        whole = {str(i["id"]): i for i in listed if all(f in i for f in _USER_FIELDS)}
        partial = [str(i["id"]) for i in listed if str(i["id"]) not in whole]
        returning = set(whole) | {str(i["id"]) for i in listed if _RETURN_FIELDS & i.keys()}
        for start in range(0, len(partial), 15):
            whole.update(self._by_ids("users", partial[start : start + 15], USER_SELECT))
        users: dict[str, DirectoryUser] = {}
        skipped: list[Skipped] = []
        for item in whole.values():
            record = user_record(item, self.config)
            if isinstance(record, Skipped):
                skipped.append(record)
            else:
                users[record.external_id] = record
        parents = {uid: self._parents(uid) for uid in sorted(returning & users.keys())}
        return users, skipped, removed, parents

    def _by_ids(self, kind: str, ids: list[str], select: str) -> dict[str, dict[str, Any]]:
        """Whole objects by id. One the round named but Graph does not return (yet) fails the run:
        its cursor stays, and the next run reads the same changes again."""
        quoted = ",".join(f"'{i}'" for i in ids)
        page = self.client.get(kind, {"$filter": f"id in ({quoted})", "$select": select})
        found = {str(item["id"]): item for item in page.get("value", [])}
        missing = [i for i in ids if i not in found]
        if missing:
            raise ConnectorError(
                FailureReason.SEARCH_FAILED,
                f"Graph named {kind} {', '.join(missing)} in a delta round but does not return "
                "them (replication lag, or deleted since); the next run reads these changes again",
            )
        return found

    def _parents(self, user_id: str) -> tuple[str, ...]:
        """Every group that lists the user directly (``memberOf``, groups only, all pages)."""
        groups: list[str] = []
        url = f"users/{user_id}/memberOf/microsoft.graph.group"
        for page in self._pages(url, {"$select": "id"}):
            groups += [str(g["id"]) for g in page.get("value", [])]
        return tuple(groups)

    def _changed_groups(
        self, items: list[dict[str, Any]]
    ) -> tuple[dict[str, DirectoryGroup], list[MemberOp], set[str]]:
        """Records of groups whose properties changed (read again whole when partial), membership
        operations in the order the round gives them, and the ids that left."""
        gone = {str(i["id"]) for i in items if "@removed" in i}
        named = [i for i in items if "@removed" not in i and any(f in i for f in _GROUP_FIELDS)]
        whole = {str(i["id"]): i for i in named if all(f in i for f in _GROUP_FIELDS)}
        partial = sorted({str(i["id"]) for i in named} - whole.keys())
        for start in range(0, len(partial), 15):
            whole.update(self._by_ids("groups", partial[start : start + 15], "id,displayName,description"))
        groups = {gid: group_record(item, self.config, None) for gid, item in whole.items()}
        ops = [
            MemberOp(MemberOpKind.REMOVE if was_removed else MemberOpKind.ADD, str(item["id"]), member)
            for item in items
            if "@removed" not in item
            for member, counted, was_removed in member_entries(item)
            if counted
        ]
        return groups, ops, gone


def _links(cursor: str) -> dict[str, str] | None:
    """The two delta links of a cursor; None for a cursor this connector did not write."""
    try:
        links = json.loads(cursor)
    except ValueError:
        return None
    if not isinstance(links, dict) or not all(isinstance(links.get(k), str) for k in ("users", "groups")):
        return None
    return {"users": links["users"], "groups": links["groups"]}

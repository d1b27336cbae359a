"""A spooled read: decoded users live in a temporary file, and a run reads each when it needs it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from roster.connectors.spool import UserSpool
from roster.domain.reconcile import reconcile
from roster.domain.records import CachedState, DirectoryUser
from roster.domain.snapshot import SnapshotBuilder
from tests.unit.test_reconcile import apply_in_memory, mk_group, mk_user


def test_the_spool_is_a_mapping_of_users() -> None:
    spool = UserSpool(batch=3)
    users = [mk_user(f"u{i}", title=f"t{i}") for i in range(10)]
    for u in users:
        spool[u.external_id] = u
    spool["u4"] = mk_user("u4", title="again")  # written twice: the last one counts
    del spool["u9"]
    assert len(spool) == 9 and "u9" not in spool and "u0" in spool
    assert spool["u4"].job_title == "again" and spool["u0"] == users[0]
    assert sorted(spool) == sorted(f"u{i}" for i in range(9))
    assert dict(spool.items()) == {**{u.external_id: u for u in users[:9]}, "u4": spool["u4"]}
    spool.close()


class Counting(Mapping[str, DirectoryUser]):
    """A user store that counts reads."""

    def __init__(self, users: dict[str, DirectoryUser]) -> None:
        self.users, self.reads = users, 0

    def __getitem__(self, key: str) -> DirectoryUser:
        self.reads += 1
        return self.users[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.users)

    def __len__(self) -> int:
        return len(self.users)


def test_reconcile_names_new_users_without_reading_them() -> None:
    """A first sync's change set holds no users: the writer reads them a chunk at a time."""
    spool = UserSpool(batch=2)
    builder = SnapshotBuilder(spool)
    for u in (mk_user("b"), mk_user("a"), mk_user("c")):
        builder.add_user(u)
    builder.add_group(mk_group("g", ("a", "c")))
    snapshot = builder.build()
    counting = Counting(dict(spool.items()))
    changes = reconcile(snapshot.__class__(**{**snapshot.__dict__, "users": counting}), CachedState())
    assert counting.reads == 0 and len(changes.users_created) == 3
    assert [u.external_id for u in changes.users_created] == ["a", "b", "c"] and counting.reads == 3
    assert changes.users_created[1:] == [spool["b"], spool["c"]]
    assert list(changes.members_added) == [("g", "a"), ("g", "c")]
    cached = apply_in_memory(CachedState(), changes)  # an unchanged re-read then changes nothing
    again = reconcile(snapshot, cached)
    assert again.is_empty and not again.users_created

"""The wire form of batches: every snapshot and delta survives the round trip exactly."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roster.connectors.memory import MemoryDirectory
from roster.domain.delta import Delta, MemberOp, MemberOpKind
from roster.domain.records import DirectoryGroup, DirectoryUser, Skipped, Snapshot
from roster.wire import WireError, decode_batch, encode_batch

text = st.text(max_size=12)
json_objects = st.dictionaries(
    st.text(max_size=5), st.lists(st.text(max_size=5), max_size=2), max_size=3
).map(lambda d: json.dumps(d, sort_keys=True))
maybe = st.none() | text
ids = st.text(min_size=1, max_size=8)

users = st.builds(
    DirectoryUser,
    external_id=ids,
    dn=maybe,
    email=maybe,
    name=maybe,
    first_name=maybe,
    last_name=maybe,
    username=maybe,
    job_title=maybe,
    phone=maybe,
    active=st.booleans(),
    raw_json=json_objects,
    content_hash=text,
    custom_json=json_objects,
    source_hash=maybe,
)
groups = st.builds(
    DirectoryGroup,
    external_id=ids,
    dn=maybe,
    name=text,
    description=maybe,
    raw_json=json_objects,
    content_hash=text,
    member_refs=st.none() | st.tuples(ids, ids) | st.just(()),
)
skipped = st.builds(Skipped, external_id=ids, dn=maybe, reason=text)


def keyed(records: list[DirectoryUser] | list[DirectoryGroup]) -> dict[str, DirectoryUser | DirectoryGroup]:
    return {r.external_id: r for r in records}


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    user_map = keyed(draw(st.lists(users, max_size=4)))
    group_map = keyed(draw(st.lists(groups, max_size=4)))
    unchanged = draw(st.dictionaries(ids, text, max_size=3))
    members = sorted(user_map.keys() | group_map.keys() | unchanged.keys())
    pairs = st.tuples(st.sampled_from(sorted(group_map)), st.sampled_from(members))
    memberships = draw(st.frozensets(pairs, max_size=5)) if group_map and members else frozenset()
    return Snapshot(
        users=user_map,
        groups=group_map,
        memberships=memberships,
        skipped=tuple(draw(st.lists(skipped, max_size=2))),
        ignored_members=draw(st.integers(0, 10)),
        foreign_members=draw(st.integers(0, 10)),
        cursor=draw(maybe),
        unchanged=unchanged,
    )


ops = st.builds(MemberOp, op=st.sampled_from(MemberOpKind), group=ids, member=ids)
deltas = st.builds(
    Delta,
    cursor=maybe,
    users=st.lists(users, max_size=4).map(keyed),
    groups=st.lists(groups, max_size=4).map(keyed),
    member_of=st.dictionaries(ids, st.lists(ids, max_size=3).map(tuple), max_size=3),
    removed=st.frozensets(ids, max_size=3),
    skipped=st.lists(skipped, max_size=2).map(tuple),
    member_ops=st.lists(ops, max_size=5).map(tuple),
    present=st.none() | st.frozensets(ids, max_size=4),
)


@settings(max_examples=150)
@given(st.one_of(snapshots(), deltas))
def test_round_trip(batch: Snapshot | Delta) -> None:
    assert decode_batch(encode_batch(batch)) == batch


def test_a_real_read_round_trips() -> None:
    source = MemoryDirectory()
    source.put_user("ada", {"mail": ["ada@example.com"], "displayName": ["Ada Lovelace"]})
    source.put_user("nomail", {"displayName": ["No Mail"]})
    source.put_group("eng", {"cn": ["Engineering"]})
    source.add_member("eng", "ada")
    snapshot = source.snapshot()
    assert snapshot.member_digests  # computed by the reader; the server computes its own
    assert decode_batch(encode_batch(snapshot)) == replace(snapshot, member_digests={})
    cursor = snapshot.cursor
    assert cursor is not None
    source.remove_member("eng", "ada")
    delta = source.changes(cursor)
    assert delta is not None and decode_batch(encode_batch(delta)) == delta


@pytest.mark.parametrize(
    ("document", "field"),
    [
        (b"{", "(document)"),
        (b'{"version":2,"kind":"delta","batch":{}}', "delta.version"),
        (b'{"version":1,"kind":"upload","batch":{}}', "(document)"),
        (
            b'{"version":1,"kind":"delta","batch":{"member_ops":[{"op":"move","group":"g","member":"m"}]}}',
            "op",
        ),
        (b'{"version":1,"kind":"snapshot","batch":{"users":{},"groups":{}}}', "memberships"),
    ],
)
def test_malformed_uploads_name_the_field(document: bytes, field: str) -> None:
    with pytest.raises(WireError, match="^[^:]*" + field.replace("(", r"\(").replace(")", r"\)")):
        decode_batch(document)


def test_records_keyed_by_another_id_are_refused() -> None:
    user = DirectoryUser("ada", None, "a@x", "Ada", None, None, None, None, None, True, "{}", "h")
    data = encode_batch(Delta(users={"ada": user})).replace(b'"users":{"ada"', b'"users":{"bob"')
    with pytest.raises(WireError, match=r"batch\.users\.bob: keyed by 'bob' but its external_id is 'ada'"):
        decode_batch(data)


def test_inconsistent_uploads_are_refused() -> None:
    source = MemoryDirectory()
    source.put_user("ada", {"mail": ["ada@example.com"]})
    source.put_group("eng", {"cn": ["Engineering"]})
    source.add_member("eng", "ada")
    good = encode_batch(source.snapshot())
    with pytest.raises(WireError, match=r"batch\.memberships: \('eng', 'ghost'\) names an object"):
        decode_batch(good.replace(b'["eng","ada"]', b'["eng","ghost"]'))
    raw = json.loads(good)
    raw["batch"]["users"]["ada"]["raw_json"] = "not json"
    with pytest.raises(WireError, match=r"batch\.users\.ada\.raw_json: is not JSON"):
        decode_batch(json.dumps(raw))
    raw["batch"]["users"]["ada"]["raw_json"] = "[1]"
    with pytest.raises(WireError, match="must be a JSON object"):
        decode_batch(json.dumps(raw))

import pytest

from roster.ids import has_prefix, new_id, new_ids


def test_ids_are_prefixed_sortable_and_unique() -> None:
    ids = [new_id("directory_user") for _ in range(2000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(has_prefix(i, "directory_user") for i in ids)


def test_bulk_ids_continue_the_sequence() -> None:
    first = new_id("event")
    batch = new_ids("event", 500)
    last = new_id("event")
    assert [first, *batch, last] == sorted([first, *batch, last])
    assert len(set(batch)) == 500


def test_ids_are_url_safe() -> None:
    value = new_id("org")
    assert value.replace("_", "").isalnum()


def test_unknown_prefix_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown id prefix"):
        new_id("user")


def test_bulk_encoding_matches_the_plain_encoder() -> None:
    from roster.ids import _encode

    ids = new_ids("log", 3000)
    prefix_len = len("log_") + 10
    assert all(len(i) == prefix_len + 16 for i in ids)
    for i in ids[::60]:
        tail = i[prefix_len:]
        value = 0
        for ch in tail:
            value = value * 32 + "0123456789ABCDEFGHJKMNPQRSTVWXYZ".index(ch)
        assert _encode(value, 16) == tail

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

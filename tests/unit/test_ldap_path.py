import pytest
from hypothesis import given
from hypothesis import strategies as st

from roster.domain.ldap_path import SearchPathError, parse_search_path, search_roots


@pytest.mark.parametrize(
    ("text", "dn"),
    [
        ("CN=Users, DC=domain, DC=local", "CN=Users,DC=domain,DC=local"),
        ("cn=users,dc=domain,dc=local", "CN=users,DC=domain,DC=local"),
        ("OU=Sales, OU=EMEA, DC=corp, DC=example, DC=com", "OU=Sales,OU=EMEA,DC=corp,DC=example,DC=com"),
        ("DC=local", "DC=local"),
        ("  OU = Sales ,DC=x", "OU=Sales,DC=x"),
        ("OU=Sales\\, EMEA, DC=x", "OU=Sales\\, EMEA,DC=x"),
    ],
)
def test_valid_paths(text: str, dn: str) -> None:
    assert parse_search_path(text).dn == dn


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "search path '': is empty; write it like 'CN=Users, DC=domain, DC=local'"),
        (
            "O=Acme, DC=local",
            "search path 'O=Acme, DC=local': element 1 'O=Acme' has type 'O'; "
            "each element must be DC, CN or OU",
        ),
        (
            "DC=domain, OU=Sales",
            "search path 'DC=domain, OU=Sales': element 2 'OU=Sales' comes after a DC element; the DC "
            "elements must form the right-hand end of the path (e.g. OU=Sales, DC=domain, DC=local)",
        ),
        (
            "CN=Users, OU=Staff",
            "search path 'CN=Users, OU=Staff': element 2 'OU=Staff' is not a DC element; the path must "
            "end with the domain's DC elements (e.g. DC=domain, DC=local)",
        ),
        ("CN=Users,, DC=x", "search path 'CN=Users,, DC=x': element 2 is empty; remove the extra comma"),
        (
            "Users, DC=x",
            "search path 'Users, DC=x': element 1 'Users' has no '='; "
            "each element is TYPE=value, e.g. OU=Sales",
        ),
        ("CN=, DC=x", "search path 'CN=, DC=x': element 1 'CN=' has an empty value"),
    ],
)
def test_invalid_paths_name_the_element_and_rule(text: str, message: str) -> None:
    with pytest.raises(SearchPathError) as info:
        parse_search_path(text)
    assert str(info.value) == message


def test_error_carries_the_offending_element() -> None:
    with pytest.raises(SearchPathError) as info:
        parse_search_path("OU=Sales, DC=x, CN=Users")
    assert info.value.element == "CN=Users"


def test_overlapping_paths_keep_the_outermost_in_any_order() -> None:
    paths = ["CN=Users, DC=corp, DC=local", "DC=corp, DC=local", "OU=Sales, DC=corp, DC=local"]
    for order in (paths, list(reversed(paths)), [paths[1], paths[0], paths[2]]):
        assert [r.dn for r in search_roots(order)] == ["DC=corp,DC=local"]


def test_disjoint_paths_are_all_kept_in_a_fixed_order() -> None:
    a, b = "OU=Sales, DC=corp, DC=local", "cn=users, dc=CORP, dc=local"
    assert search_roots([a, b]) == search_roots([b, a])
    assert len(search_roots([a, b, a.upper()])) == 2


def test_sibling_with_common_prefix_is_not_contained() -> None:
    roots = search_roots(["OU=Sales, DC=corp, DC=local", "OU=Sales2, DC=corp, DC=local"])
    assert len(roots) == 2


def test_no_paths_is_an_error() -> None:
    with pytest.raises(SearchPathError, match="no search path given"):
        search_roots([])


def test_a_missing_comma_is_named() -> None:
    """Two elements glued together ("OU=Sales DC=domain") are a typo, not a value with a space."""
    with pytest.raises(SearchPathError, match="comma missing before 'DC=domain'") as caught:
        parse_search_path("OU=Sales DC=domain, DC=local")
    assert caught.value.element == "OU=Sales DC=domain"
    assert parse_search_path("OU=Sales and Marketing, DC=domain").dn == "OU=Sales and Marketing,DC=domain"


@given(
    st.lists(
        st.lists(st.sampled_from(["OU=a", "OU=b", "CN=c", "OU=A"]), max_size=3).map(
            lambda inner: ", ".join([*inner, "DC=example", "DC=com"])
        ),
        min_size=1,
        max_size=12,
    )
)
def test_roots_are_the_outermost_paths(paths: list[str]) -> None:
    """The same answer as comparing every pair (which took minutes for thousands of paths)."""
    roots = search_roots(paths)
    parsed = [parse_search_path(p) for p in paths]
    assert all(any(r.contains(p) for r in roots) for p in parsed)  # everything is covered
    assert not any(a is not b and a.contains(b) for a in roots for b in roots)  # by the outermost only


def test_search_paths_are_bounded() -> None:
    with pytest.raises(SearchPathError, match="at most 200"):
        search_roots([f"OU=u{i}, DC=example, DC=com" for i in range(201)])
    with pytest.raises(SearchPathError, match="at most 2000"):
        parse_search_path("OU=x, " * 400 + "DC=com")
    many = [f"OU=u{i}, OU=people, DC=example, DC=com" for i in range(200)]
    assert len(search_roots(many)) == 200  # siblings, none inside another


def test_a_domain_name_in_one_dc_element_is_named() -> None:
    """ "DC=example.com" is the domain written whole; the path needs one DC element per label."""
    with pytest.raises(SearchPathError, match=r"write DC=example, DC=com") as caught:
        parse_search_path("OU=People, DC=example.com")
    assert caught.value.element == "DC=example.com"

import re
import sys
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roster.domain.dn import _fast, _slow, normalize_dn


def old_normalize_dn(dn: str) -> str:
    """roster.domain.mapping.normalize_dn before RFC 4514 parsing."""
    dn = dn.lower()
    if " " in dn:
        dn = re.sub(r"\s*([,=+])\s*", r"\1", dn.strip())
    return dn


# --- examples -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    [
        r"cn=Smith\2C John,ou=People,dc=example,dc=com",
        r"CN=Smith\, John, OU=People,DC=example, DC=com",
        r"cn=smith\2c john,ou=people,dc=example,dc=com",
        'CN="Smith, John",OU=People,DC=example,DC=com',
        r"cn = Smith\,  John ; ou = People ; dc = example ; dc = com",
        r"2.5.4.3=Smith\, John,2.5.4.11=People,0.9.2342.19200300.100.1.25=example,DC=com",
        r"OID.2.5.4.3=Smith\, John,oid.2.5.4.11=People,dc=example,dc=com",
        r"  cn=Smith\, John,ou=People,dc=example,dc=com  ",
    ],
)
def test_ad_last_first_spellings_share_a_key(spelling: str) -> None:
    assert normalize_dn(spelling) == r"cn=smith\, john,ou=people,dc=example,dc=com"


@pytest.mark.parametrize(
    ("dn", "key"),
    [
        (r"cn=Ren\C3\A9 Dupont,dc=x", "cn=rené dupont,dc=x"),
        ("cn=René Dupont,dc=x", "cn=rené dupont,dc=x"),
        (r"cn=\E6\97\A5\E6\9C\AC,dc=x", "cn=日本,dc=x"),
        (r"cn=\f0\9f\98\80,dc=x", "cn=😀,dc=x"),
        (r"cn=a\20b,dc=x", "cn=a b,dc=x"),
        (r"cn=a\00b", r"cn=a\00b"),
        ("cn=a\nb", r"cn=a\0ab"),
        ("cn=a\x85b", r"cn=a\c2\85b"),
        (r"cn=\3D\2B\22\5C\3C\3E\3B", r"cn=\=\+\"\\\<\>\;"),
        ("cn=a=b", r"cn=a\=b"),
        ("cn=a<b>", r"cn=a\<b\>"),
    ],
)
def test_values_are_decoded_and_reescaped(dn: str, key: str) -> None:
    assert normalize_dn(dn) == key


@pytest.mark.parametrize(
    ("dn", "key"),
    [
        ("2.5.4.3=a,2.5.4.11=b,2.5.4.10=c,2.5.4.6=d,2.5.4.7=e,2.5.4.8=f", "cn=a,ou=b,o=c,c=d,l=e,st=f"),
        ("0.9.2342.19200300.100.1.1=jdoe,0.9.2342.19200300.100.1.25=example", "uid=jdoe,dc=example"),
        ("OID.2.5.4.3=a,oid.2.5.4.3=b,Oid.2.5.4.3=c", "cn=a,cn=b,cn=c"),
        ("1.2.840.113556.1.4.1=x", "1.2.840.113556.1.4.1=x"),
        ("OID.1.2.3=x", "1.2.3=x"),
        ("2.5.4.03=x", "cn=x"),
        ("CommonName=x", "commonname=x"),
    ],
)
def test_attribute_types(dn: str, key: str) -> None:
    assert normalize_dn(dn) == key


def test_multi_valued_rdns_are_sorted() -> None:
    assert normalize_dn("cn=a+uid=b,dc=x") == normalize_dn("UID=b + CN=A,dc=x") == "cn=a+uid=b,dc=x"
    assert normalize_dn("uid=b+2.5.4.3=a+ou=c") == "cn=a+ou=c+uid=b"
    assert normalize_dn(r"cn=a\+uid=b") == r"cn=a\+uid\=b"


@pytest.mark.parametrize(
    ("dn", "key"),
    [
        ('cn="Smith, John"', r"cn=smith\, john"),
        ('cn = "a+b;c<d>e=f#g" , dc=x', r"cn=a\+b\;c\<d\>e\=f#g,dc=x"),
        (r'cn="say \"hi\" \\ \41"', r"cn=say \"hi\" \\ a"),
        ('cn=" padded "', r"cn=\ padded\ "),
        ('cn="#x"', r"cn=\#x"),
        ('cn=""', "cn="),
        ('cn=a"b', r"cn=a\"b"),
    ],
)
def test_quoted_values(dn: str, key: str) -> None:
    assert normalize_dn(dn) == key


@pytest.mark.parametrize(
    ("dn", "key"),
    [
        ("  cn = John   Smith ,  ou = People  ", "cn=john smith,ou=people"),
        ("cn=a, dc=x", "cn=a,dc=x"),
        (r"cn=\ a", r"cn=\ a"),
        (r"cn=\20a", r"cn=\ a"),
        (r"cn=a\ ", r"cn=a\ "),
        (r"cn=a\  ", r"cn=a\ "),
        (r"cn=a \ ", r"cn=a\ "),
        (r"cn=\ \ a\ \ b\ \ ", r"cn=\ a b\ "),
        ("cn=", "cn="),
        ("cn= ,dc=x", "cn=,dc=x"),
        ("", ""),
        ("   ", ""),
    ],
)
def test_spaces(dn: str, key: str) -> None:
    assert normalize_dn(dn) == key


def test_ber_values_are_lower_case_hex() -> None:
    assert normalize_dn("CN=#04024A6F , DC=x") == "cn=#04024a6f,dc=x"
    assert normalize_dn(r"cn=\#04024a6f") == r"cn=\#04024a6f"
    assert normalize_dn("cn=#04024a6f") != normalize_dn(r"cn=\#04024a6f")


def test_semicolon_separates_rdns() -> None:
    assert normalize_dn("cn=a; ou=b;dc=c") == "cn=a,ou=b,dc=c"


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (r"cn=a\,b", "cn=a,b="),
        (r"cn=a\,b=c", "cn=a,b=c"),
        (r"cn=a\+b=c", "cn=a+b=c"),
        (r"cn=a\;b=c", "cn=a;b=c"),
        (r"cn=a\=b", "cn=a,b="),
        (r"cn=\#04", "cn=#04"),
        (r"cn=\ a", "cn=a"),
        (r"cn=a\ ", "cn=a"),
        (r"cn=a\\,b=c", r"cn=a\,b=c"),
        ("cn=a+cn=a", "cn=a"),
        ("cn=a,cn=b", "cn=b,cn=a"),
        ("cn=a,dc=x", "cn=a+dc=x"),
        ("cn=ab", "cn=a b"),
        (r"cn=a\00", "cn=a"),
        ("ou=a", "cn=a"),
        ("cn=ß", "cn=ss"),
    ],
)
def test_different_dns_get_different_keys(one: str, other: str) -> None:
    assert normalize_dn(one) != normalize_dn(other)


@pytest.mark.parametrize(
    "dn",
    [
        "cn=a\\",
        r"CN=\ZZ,dc=x",
        r"cn=\FF",
        r"cn=\C3",
        "cn=a,,dc=x",
        "cn=a,",
        "garbage",
        "c n=a",
        "cn=#abc",
        'cn="a',
        'cn=  "a, dc=x',
        "cn= #zz",
        'cn="a"b',
        "cn=a+",
        "=a",
    ],
)
def test_unparseable_dns_get_the_conservative_key(dn: str) -> None:
    assert _slow(dn) is None
    assert normalize_dn(dn) == dn.strip().lower()
    assert normalize_dn(f"  {dn.upper()}") == normalize_dn(dn)


def test_the_fast_path_keeps_the_old_keys() -> None:
    assert _fast("CN=Users, DC=Example, DC=com") == "cn=users,dc=example,dc=com"
    assert _fast(r"cn=a\,b") is None
    assert _fast("2.5.4.3=a") is None
    assert _fast("cn=a+uid=b") is None


def test_the_fast_path_leaves_all_other_whitespace_and_controls_to_the_slow_path() -> None:
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        if (char.isspace() and char != " ") or unicodedata.category(char) == "Cc":
            assert _fast(f"cn=a{char}b") is None, hex(code)


def test_long_dns_are_handled_in_linear_time() -> None:
    # No clock: a quadratic path would make these 100k-character inputs take minutes, not milliseconds.
    n = 100_000
    assert normalize_dn("CN=" + "A" * n) == "cn=" + "a" * n
    assert normalize_dn("cn=a" + " " * n + "b") == "cn=a b"
    assert normalize_dn("cn=a" + " " * n + "b+") == ("cn=a" + " " * n + "b+")
    assert normalize_dn("cn=" + r"\2C" * (n // 3)) == "cn=" + r"\," * (n // 3)
    assert normalize_dn("cn=" + r"\E2\82\AC" * (n // 9)) == "cn=" + "€" * (n // 9)
    assert normalize_dn(",".join(["cn=a\\,b"] * (n // 7))) == ",".join(["cn=a\\,b"] * (n // 7))
    assert normalize_dn("+".join(f"cn={i:06}" for i in reversed(range(n // 10)))).startswith("cn=000000+")
    assert normalize_dn("1" * n) == "1" * n
    assert normalize_dn("cn=" + "\\" * n + "\\") == "cn=" + "\\" * (n + 1)
    assert normalize_dn('cn="' + "a, " * (n // 3) + '"').startswith(r"cn=a\, a\, ")
    assert normalize_dn(" " * n) == ""
    assert normalize_dn("cn=a" + "  ,dc=b" * (n // 7)) == "cn=a" + ",dc=b" * (n // 7)


# --- properties ---------------------------------------------------------------------------------------

# canonical type -> spellings of it
TYPES = {
    "cn": ["cn", "CN", "Cn", "2.5.4.3", "OID.2.5.4.3", "oid.2.5.4.3"],
    "ou": ["ou", "OU", "2.5.4.11"],
    "dc": ["dc", "DC", "0.9.2342.19200300.100.1.25", "OID.0.9.2342.19200300.100.1.25"],
    "uid": ["uid", "UID", "0.9.2342.19200300.100.1.1"],
    "x-attr9": ["x-attr9", "X-Attr9"],
    "1.2.840.113556.1.4.1": ["1.2.840.113556.1.4.1", "OID.1.2.840.113556.1.4.1"],
}
MUST_ESCAPE = ',+"\\<>;'
ESCAPABLE = ',+"\\<>;=# '

Rdns = list[list[tuple[str, str]]]


def rdns(values: st.SearchStrategy[str]) -> st.SearchStrategy[Rdns]:
    ava = st.tuples(st.sampled_from(sorted(TYPES)), values)
    return st.lists(st.lists(ava, min_size=1, max_size=3), min_size=1, max_size=4)


def canonical(dn: Rdns) -> tuple[tuple[tuple[str, str], ...], ...]:
    """What the key must identify: types, values lower-cased with space runs collapsed, AVAs as a set."""
    return tuple(tuple(sorted((t, re.sub(" {2,}", " ", v.lower())) for t, v in rdn)) for rdn in dn)


def hex_escape(draw: st.DrawFn, char: str) -> str:
    text = "".join(f"\\{b:02x}" for b in char.encode())
    return text.upper() if draw(st.booleans()) else text


def spell_char(draw: st.DrawFn, char: str, edge: bool) -> str:
    if char == "\x00" or (char in MUST_ESCAPE) or edge:
        return draw(
            st.sampled_from(["\\" + char, hex_escape(draw, char)]) if char != "\x00" else st.just("\\00")
        )
    choices = ["literal", "hex"] + (["backslash"] if char in ESCAPABLE else [])
    how = draw(st.sampled_from(choices))
    if how == "hex":
        return hex_escape(draw, char)
    return "\\" + char if how == "backslash" else char


@st.composite
def spell_value(draw: st.DrawFn, value: str) -> str:
    """One legal spelling of a value: random ASCII case, escaping choices, or the quoted form."""
    value = "".join(c.swapcase() if c.isascii() and draw(st.booleans()) else c for c in value)
    if draw(st.integers(0, 3)) == 0:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    last = len(value) - 1
    return "".join(
        spell_char(draw, c, edge=(i == 0 and c in "# ") or (i == last and c == " "))
        for i, c in enumerate(value)
    )


PAD = st.sampled_from(["", " ", "  "])


@st.composite
def spell(draw: st.DrawFn, dn: Rdns) -> str:
    """One legal spelling of a DN: type spellings, AVA order, separators, spaces and value spellings."""
    rdn_texts = []
    for rdn in dn:
        avas = draw(st.permutations(rdn))
        texts = [
            f"{draw(PAD)}{draw(st.sampled_from(TYPES[t]))}{draw(PAD)}={draw(PAD)}{draw(spell_value(v))}{draw(PAD)}"
            for t, v in avas
        ]
        rdn_texts.append("+".join(texts))
    text = rdn_texts[0]
    for rdn_text in rdn_texts[1:]:
        text += draw(st.sampled_from([",", ";"])) + rdn_text
    return text


@settings(max_examples=150, deadline=None)
@given(rdns(st.text(max_size=12)), st.data())
def test_every_spelling_of_a_dn_has_the_same_key(dn: Rdns, data: st.DataObject) -> None:
    one, other = data.draw(spell(dn)), data.draw(spell(dn))
    key = normalize_dn(one)
    assert _slow(one) == key  # parsed, not the fallback
    assert normalize_dn(other) == key
    assert normalize_dn(key) == key


SMALL = st.text(alphabet='aA #,+=\\"\x00', max_size=4)


@settings(max_examples=150, deadline=None)
@given(rdns(SMALL), rdns(SMALL), st.data())
def test_keys_are_equal_exactly_when_the_dns_are(one: Rdns, other: Rdns, data: st.DataObject) -> None:
    same = canonical(one) == canonical(other)
    assert (normalize_dn(data.draw(spell(one))) == normalize_dn(data.draw(spell(other)))) == same


@settings(max_examples=300, deadline=None)
@given(rdns(SMALL), st.data())
def test_keys_are_equal_exactly_when_the_dns_are_near_misses(dn: Rdns, data: st.DataObject) -> None:
    # A near miss: one value with one character changed, or the same RDNs in another split.
    i = data.draw(st.integers(0, len(dn) - 1))
    j = data.draw(st.integers(0, len(dn[i]) - 1))
    kind, value = dn[i][j]
    changed = value + data.draw(st.sampled_from(["a", " ", "\\", ",", "#"]))
    other = [list(rdn) for rdn in dn]
    other[i][j] = (kind, changed)
    merged = [[ava for rdn in dn for ava in rdn]]
    for variant in (other, merged):
        same = canonical(dn) == canonical(variant)
        assert (normalize_dn(data.draw(spell(dn))) == normalize_dn(data.draw(spell(variant)))) == same


PLAIN_VALUES = st.text(alphabet="abXYZ09 -_.éßΣ", max_size=8)


@settings(max_examples=150, deadline=None)
@given(rdns(PLAIN_VALUES), st.data())
def test_the_fast_path_takes_plain_dns_and_agrees_with_the_slow_path(dn: Rdns, data: st.DataObject) -> None:
    keystrings = {
        t: [s for s in names if s[0].isalpha() and "." not in s] or ["x"] for t, names in TYPES.items()
    }
    text = ",".join(
        f"{data.draw(PAD)}{data.draw(st.sampled_from(keystrings[t]))}{data.draw(PAD)}={data.draw(PAD)}{v}"
        for (t, v), *_ in dn
    )
    fast = _fast(text)
    assert fast is not None
    assert fast == _slow(text) == re.sub(" {2,}", " ", old_normalize_dn(text))


NEAR_DN_AVA = st.builds(
    "".join,
    st.tuples(
        st.sampled_from(["", "", "", " ", " ", "  ", "\t", "\xa0"]),
        st.sampled_from(["cn", "CN", "x-1", "Ou", "o", "2.5.4.3", "OID.2.5.4.3", "c n", "\u212a", "ß", ""]),
        st.sampled_from(["=", "=", "=", " = ", "  =", "", "=="]),
        st.one_of(
            st.text(alphabet="aZé ßΣ.1-", max_size=8),
            st.text(alphabet='aZé ßΣ#\\"\t\xa0\x00.1-<>=', max_size=8),
        ),
    ),
)
NEAR_DNS = st.builds(
    lambda first, rest: first + "".join(sep + ava for sep, ava in rest),
    NEAR_DN_AVA,
    st.lists(
        st.tuples(st.sampled_from([",", ",", ",", ", ", "  ,  ", ";", "+", ",,"]), NEAR_DN_AVA), max_size=3
    ),
) | st.text(alphabet="cnoCN=,= ,aé-1ßΣ.\t", max_size=20)


@settings(max_examples=1000, deadline=None)
@given(NEAR_DNS)
def test_fast_and_slow_agree_wherever_both_accept(text: str) -> None:
    fast, slow = _fast(text), _slow(text)
    if fast is not None:
        assert fast == slow
        assert fast == re.sub(" {2,}", " ", old_normalize_dn(text))
    key = normalize_dn(text)
    assert key == (slow if slow is not None else text.strip().lower())
    if slow is not None:
        assert normalize_dn(key) == key


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_never_raises(text: str) -> None:
    key = normalize_dn(text)
    if _slow(text) is not None:
        assert normalize_dn(key) == key

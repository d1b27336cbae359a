"""A canonical comparison key for LDAP distinguished names (RFC 4514, RFC 4517/4512).

:func:`normalize_dn` turns any spelling of a DN into one key, so DNs read from
different places (a group's ``member`` values, an entry's own DN, a configured
search path) can be matched. The key is itself a DN in one canonical spelling:

- RDNs are joined by ``,`` (``;`` is accepted as a legacy separator); spaces
  around ``,`` ``;`` ``+`` ``=`` are dropped;
- attribute types are lower-cased; numeric OIDs (also ``OID.``-prefixed) of
  well-known types become their short names (``2.5.4.3`` -> ``cn``), other OIDs
  are kept without the prefix;
- values are decoded (``\\XX`` hex pairs as UTF-8, ``\\<special>``, RFC 1779
  ``"quoted"`` values), lower-cased (``str.lower``), unescaped leading and
  trailing spaces dropped, and every run of spaces collapsed to one space -- the
  directories we sync compare these values with case-insensitive matching;
- ``#``-hex (BER) values are kept as ``#`` plus lower-case hex;
- the AVAs of a multi-valued RDN are sorted by their canonical text;
- values are re-escaped one way: ``\\`` before each of ``,+"\\<>;=``, before a
  leading ``#`` or space and before a trailing space; control characters
  (Unicode Cc) as lower-case ``\\xx`` UTF-8 hex pairs; nothing else.

Escaped leading/trailing spaces (``\\ `` or ``\\20``) are kept; only unescaped
ones are insignificant. Distinct canonical DNs give distinct keys, and the key
of a parseable DN is its own key. Input that cannot be parsed (a lone trailing
``\\``, ``\\ZZ``, invalid UTF-8 in hex escapes, an empty RDN, a type that is
neither a keystring nor a numeric OID) gets the conservative key
``dn.strip().lower()``, the old behaviour minus the space handling: it matches
the same text in other case or with other surrounding whitespace, and nothing
else that a real directory would return.
:func:`normalize_dn` never raises.
"""

from __future__ import annotations

import re

KNOWN_OIDS = {
    "2.5.4.3": "cn",
    "2.5.4.4": "sn",
    "2.5.4.5": "serialnumber",
    "2.5.4.6": "c",
    "2.5.4.7": "l",
    "2.5.4.8": "st",
    "2.5.4.9": "street",
    "2.5.4.10": "o",
    "2.5.4.11": "ou",
    "2.5.4.12": "title",
    "2.5.4.42": "givenname",
    "0.9.2342.19200300.100.1.1": "uid",
    "0.9.2342.19200300.100.1.3": "mail",
    "0.9.2342.19200300.100.1.25": "dc",
}

# Fast path: ``type=value`` elements joined by commas, keystring types, values without
# anything that needs decoding or escaping, and no whitespace (str.isspace) other than U+0020.
_NOT_PLAIN = r'\\,;+"#<>=\x00-\x1f\x7f-\x9f\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000'
_FAST_AVA = rf" *[A-Za-z][A-Za-z0-9-]* *=[^{_NOT_PLAIN}]*+"
_FAST = re.compile(rf"{_FAST_AVA}(?:,{_FAST_AVA})*+")
_RUNS = re.compile(r" {2,}")

_ESCAPED = r'\\(?:[0-9A-Fa-f]{2}|[,+"\\<>;=# ])'  # a hex pair or an escaped special
# One ``type=value`` and the separator after it. Groups: 1 numeric OID, 2 keystring type, 3 BER hex,
# 4 quoted value, 5 string value (with its unescaped trailing spaces), 6 separator ("" at the end).
_AVA = re.compile(
    r" *+(?:(?:[Oo][Ii][Dd]\.)?([0-9]+(?:\.[0-9]+)*)|([A-Za-z][A-Za-z0-9-]*)) *+= *+"
    rf'(?:#((?:[0-9A-Fa-f]{{2}})++)|"((?:[^\\"]|{_ESCAPED})*+)"|(?![#"])((?:[^\\,;+]|{_ESCAPED})*+))'
    r" *+([,;+]?)"
)
_UNESCAPE = re.compile(r"((?:\\[0-9A-Fa-f]{2})+)|\\(.)", re.DOTALL)
_ESCAPE = re.compile(r'[,+"\\<>;=\x00-\x1f\x7f-\x9f]')


def normalize_dn(dn: str) -> str:
    """A comparison key for a DN: equal for two spellings of the same DN."""
    key = _fast(dn)
    if key is None:
        key = _slow(dn)
    return dn.strip().lower() if key is None else key


def _fast(dn: str) -> str | None:
    """The key of a plain DN (the pre-RFC 4514 behaviour plus space collapsing), or None."""
    if _FAST.fullmatch(dn) is None:
        return None
    key = dn.lower()
    if " " in key:  # as re.sub(" *([,=]) *", r"\1", ...) after collapsing the runs, but much faster
        key = _RUNS.sub(" ", key.strip(" ")) if "  " in key else key.strip(" ")
        key = key.replace(" ,", ",").replace(", ", ",").replace(" =", "=").replace("= ", "=")
    return key


def _slow(dn: str) -> str | None:
    """The key of any RFC 4514 DN (with the RFC 2253/1779 leniencies), or None if unparseable."""
    if not dn.strip(" "):
        return ""
    rdns: list[str] = []
    avas: list[str] = []
    i = 0
    while True:
        match = _AVA.match(dn, i)
        ava = None if match is None else _ava(match)
        if match is None or ava is None:
            return None
        avas.append(ava)
        i, separator = match.end(), match.group(6)
        if separator == "+":
            continue
        rdns.append("+".join(sorted(avas)) if len(avas) > 1 else avas[0])
        avas = []
        if not separator:
            return ",".join(rdns) if i == len(dn) else None


def _ava(match: re.Match[str]) -> str | None:
    """The canonical text of a matched ``type=value``, or None if its hex pairs are not UTF-8."""
    oid, name, ber, quoted, string = match.group(1, 2, 3, 4, 5)
    if oid is not None:
        oid = ".".join(part.lstrip("0") or "0" for part in oid.split("."))
        kind = KNOWN_OIDS.get(oid, oid)
    else:
        kind = name.lower()
    if ber is not None:
        return f"{kind}=#{ber.lower()}"
    if quoted is not None:
        value = quoted
    else:
        value = string.rstrip(" ")  # unescaped trailing spaces; keep one after an odd run of ``\``
        if len(value) < len(string) and (len(value) - len(value.rstrip("\\"))) % 2:
            value += " "
    if "\\" in value:
        try:
            value = _UNESCAPE.sub(_unescape, value)
        except UnicodeDecodeError:
            return None
    return f"{kind}={_escape(_RUNS.sub(' ', value.lower()))}"


def _unescape(match: re.Match[str]) -> str:
    special = match.group(2)
    if special is not None:
        return special
    return bytes.fromhex(match.group(1).replace("\\", "")).decode("utf-8")


def _escape(value: str) -> str:
    """Escape a decoded value the one canonical way."""
    if not value:
        return ""
    head = tail = ""
    if value[0] in "# ":
        head, value = "\\" + value[0], value[1:]
    if value.endswith(" "):
        value, tail = value[:-1], "\\ "
    return head + _ESCAPE.sub(_escape_char, value) + tail


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    if char in ',+"\\<>;=':
        return "\\" + char
    return "".join(f"\\{byte:02x}" for byte in char.encode("utf-8"))

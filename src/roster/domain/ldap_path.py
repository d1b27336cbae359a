"""LDAP search paths, written the way directory administrators know them.

A path names one subtree to search, for example ``CN=Users, DC=domain, DC=local``:

- each element is ``TYPE=value`` with TYPE one of ``DC``, ``CN`` or ``OU`` (any case);
- spaces after commas are allowed; a comma inside a value is escaped as ``\\,``;
- the ``DC`` elements form the right-hand end of the path, and there is at least one;
- one path is one searched subtree.

Paths may overlap and come in any order: :func:`search_roots` keeps the
outermost of overlapping paths, so nothing is searched (or synced) twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ALLOWED_TYPES = ("DC", "CN", "OU")
MAX_PATHS = 200  # search paths of one directory
MAX_PATH_LENGTH = 2000  # characters of one path
_GLUED = re.compile(r"\s((?:DC|CN|OU)\s*=.*)$", re.IGNORECASE)  # "OU=Sales DC=domain": a missing comma


class SearchPathError(ValueError):
    """A search path breaks a rule; the message names the element and the rule."""

    def __init__(self, path: str, message: str, element: str | None = None) -> None:
        self.path = path
        self.element = element
        super().__init__(f"search path {path!r}: {message}")


@dataclass(frozen=True, slots=True)
class SearchPath:
    elements: tuple[tuple[str, str], ...]  # (TYPE upper-case, value as written)

    @property
    def dn(self) -> str:
        return ",".join(f"{t}={_escape(v)}" for t, v in self.elements)

    @property
    def key(self) -> tuple[tuple[str, str], ...]:
        return tuple((t, v.lower()) for t, v in self.elements)

    def contains(self, other: SearchPath) -> bool:
        """True when ``other`` is this subtree or inside it."""
        mine, theirs = self.key, other.key
        return len(theirs) >= len(mine) and theirs[len(theirs) - len(mine) :] == mine

    def __str__(self) -> str:
        return ", ".join(f"{t}={_escape(v)}" for t, v in self.elements)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,")


def _split(path: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    chars = iter(path)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, "")
            current.append(nxt)
        elif ch == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def parse_search_path(path: str) -> SearchPath:
    if len(path) > MAX_PATH_LENGTH:
        raise SearchPathError(path[:60] + "...", f"is {len(path)} characters long; at most {MAX_PATH_LENGTH}")
    if not path.strip():
        raise SearchPathError(path, "is empty; write it like 'CN=Users, DC=domain, DC=local'")
    elements: list[tuple[str, str]] = []
    raw_parts = _split(path)
    for index, part in enumerate(raw_parts, start=1):
        text = part.strip()
        where = f"element {index} {text!r}"
        if not text:
            raise SearchPathError(path, f"element {index} is empty; remove the extra comma", text)
        if "=" not in text:
            raise SearchPathError(
                path, f"{where} has no '='; each element is TYPE=value, e.g. OU=Sales", text
            )
        kind, _, value = text.partition("=")
        kind = kind.strip().upper()
        value = value.strip()
        if kind not in ALLOWED_TYPES:
            raise SearchPathError(
                path,
                f"{where} has type {kind!r}; each element must be DC, CN or OU",
                text,
            )
        if not value:
            raise SearchPathError(path, f"{where} has an empty value", text)
        glued = _GLUED.search(value)
        if glued:
            raise SearchPathError(
                path,
                f"{where} holds a second element; is a comma missing before {glued.group(1)!r}?",
                text,
            )
        if kind == "DC" and "." in value:
            labels = ", ".join(f"DC={label.strip()}" for label in value.split(".") if label.strip())
            raise SearchPathError(
                path,
                f"{where} holds a dot; each DC element is one label of the domain name: write {labels}",
                text,
            )
        if elements and elements[-1][0] == "DC" and kind != "DC":
            raise SearchPathError(
                path,
                f"{where} comes after a DC element; the DC elements must form the "
                "right-hand end of the path (e.g. OU=Sales, DC=domain, DC=local)",
                text,
            )
        elements.append((kind, value))
    if elements[-1][0] != "DC":
        raise SearchPathError(
            path,
            f"element {len(elements)} {raw_parts[-1].strip()!r} is not a DC element; the path must "
            "end with the domain's DC elements (e.g. DC=domain, DC=local)",
            raw_parts[-1].strip(),
        )
    return SearchPath(tuple(elements))


def search_roots(paths: list[str] | tuple[str, ...]) -> tuple[SearchPath, ...]:
    """Validate ``paths`` and keep the outermost of overlapping ones, in a fixed order."""
    if not paths:
        raise SearchPathError("", "no search path given; give at least one")
    if len(paths) > MAX_PATHS:
        raise SearchPathError("", f"{len(paths)} search paths given; at most {MAX_PATHS}")
    parsed = sorted({p.key: p for p in map(parse_search_path, paths)}.values(), key=_sort_key)
    roots: list[SearchPath] = []
    kept: set[tuple[tuple[str, str], ...]] = set()
    for candidate in parsed:  # shorter (outer) paths sort first
        key = candidate.key  # inside a kept root when one of its right-hand ends is that root
        if not any(key[start:] in kept for start in range(len(key))):
            roots.append(candidate)
            kept.add(key)
    return tuple(roots)


def _sort_key(path: SearchPath) -> tuple[int, tuple[tuple[str, str], ...]]:
    return (len(path.elements), tuple(reversed(path.key)))

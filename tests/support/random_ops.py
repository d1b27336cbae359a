"""Random edits of a test directory, for "incremental runs equal a full run" tests."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Ops:
    """Drives a directory through random adds, deletes, renames, moves, disables and membership edits.

    ``writer`` provides: add_user(name) -> dn, add_group(name, members) -> dn, set_attr(dn, attr, value),
    disable(dn, flag), rename(dn, new_name) -> dn, move(dn, inside) -> dn, delete(dn),
    add_member(group, member), remove_member(group, member).
    """

    writer: object
    rng: random.Random
    users: list[str] = field(default_factory=list)  # DNs inside the search path
    outside: list[str] = field(default_factory=list)  # DNs moved out of it
    groups: dict[str, set[str]] = field(default_factory=dict)
    counter: int = 0
    log: list[str] = field(default_factory=list)

    def name(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def step(self) -> None:
        w: object = self.writer
        actions: list[Callable[[], None]] = [
            self.add_user,
            self.add_user,
            self.edit_user,
            self.add_member,
            self.add_member,
            self.remove_member,
        ]
        if len(self.users) > 3:
            actions += [self.delete_user, self.rename_user, self.move_out, self.disable_user, self.add_group]
        if self.outside:
            actions.append(self.move_in)
        if len(self.groups) > 2:
            actions += [self.delete_group, self.rename_group]
        del w
        self.rng.choice(actions)()

    def _w(self, method: str) -> Callable[..., str]:
        fn: Callable[..., str] = getattr(self.writer, method)
        return fn

    def add_user(self) -> None:
        self.users.append(self._w("add_user")(self.name("u")))
        self.log.append("add_user")

    def edit_user(self) -> None:
        if self.users:
            dn = self.rng.choice(self.users)
            attr, value = self.rng.choice(
                [("title", self.name("t")), ("mail", self.name("m") + "@example.com")]
            )
            self._w("set_attr")(dn, attr, value)
            self.log.append(f"edit {attr}")

    def disable_user(self) -> None:
        self._w("disable")(self.rng.choice(self.users), self.rng.random() < 0.7)
        self.log.append("disable")

    def delete_user(self) -> None:
        dn = self.users.pop(self.rng.randrange(len(self.users)))
        self._forget(dn)
        self._w("delete")(dn)
        self.log.append("delete_user")

    def rename_user(self) -> None:
        i = self.rng.randrange(len(self.users))
        old = self.users[i]
        new = self._w("rename")(old, self.name("r"))
        self.users[i] = new
        self._rename_member(old, new)
        self.log.append("rename_user")

    def move_out(self) -> None:
        old = self.users.pop(self.rng.randrange(len(self.users)))
        new = self._w("move")(old, False)
        self.outside.append(new)
        self._rename_member(old, new)
        self.log.append("move_out")

    def move_in(self) -> None:
        old = self.outside.pop(self.rng.randrange(len(self.outside)))
        new = self._w("move")(old, True)
        self.users.append(new)
        self._rename_member(old, new)
        self.log.append("move_in")

    def add_group(self) -> None:
        members = set(self.rng.sample(self.users, min(2, len(self.users))))
        dn = self._w("add_group")(self.name("g"), sorted(members))
        self.groups[dn] = members
        self.log.append("add_group")

    def delete_group(self) -> None:
        dn = self.rng.choice(sorted(self.groups))
        del self.groups[dn]
        self._forget(dn)
        self._w("delete")(dn)
        self.log.append("delete_group")

    def rename_group(self) -> None:
        old = self.rng.choice(sorted(self.groups))
        new = self._w("rename")(old, self.name("rg"))
        self.groups[new] = self.groups.pop(old)
        self._rename_member(old, new)
        self.log.append("rename_group")

    def add_member(self) -> None:
        if not self.groups:
            self.add_group() if len(self.users) > 1 else self.add_user()
            return
        group = self.rng.choice(sorted(self.groups))
        pool = [
            u
            for u in self.users + self.outside + list(self.groups)
            if u != group and u not in self.groups[group]
        ]
        if pool:
            member = self.rng.choice(pool)
            self._w("add_member")(group, member)
            self.groups[group].add(member)
            self.log.append("add_member")

    def remove_member(self) -> None:
        candidates = [(g, m) for g, ms in self.groups.items() for m in ms if len(ms) > 1]
        if candidates:
            group, member = self.rng.choice(sorted(candidates))
            self._w("remove_member")(group, member)
            self.groups[group].discard(member)
            self.log.append("remove_member")

    def _forget(self, dn: str) -> None:
        for members in self.groups.values():
            members.discard(dn)

    def _rename_member(self, old: str, new: str) -> None:
        """What the server does to member values when an entry moves (AD: always; OpenLDAP: refint)."""
        follows = getattr(self.writer, "members_follow_renames", True)
        for group, members in self.groups.items():
            if old in members:
                members.discard(old)
                members.add(new)
                if not follows:  # as the refint overlay would
                    self._w("add_member")(group, new)
                    self._w("remove_member")(group, old)

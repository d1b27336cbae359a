"""A deterministic company directory as LDIF: people, departments, nested groups.

Sizes and the seed are parameters, so the demo (about 1,000 users), the tests
(a few dozen) and the benchmarks (100,000 and more) share one generator.
About 2% of users have no e-mail address and 1% are disabled (``shadowExpire: 1``).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO

FIRST = [
    "Ada",
    "Alan",
    "Alice",
    "Amara",
    "Ana",
    "Arjun",
    "Beatriz",
    "Ben",
    "Carla",
    "Chen",
    "Chloe",
    "Dara",
    "David",
    "Elena",
    "Emeka",
    "Eva",
    "Farah",
    "Felix",
    "Grace",
    "Hana",
    "Hugo",
    "Ines",
    "Ivan",
    "Jade",
    "Jonas",
    "Kai",
    "Kenji",
    "Lara",
    "Leo",
    "Lina",
    "Luca",
    "Maya",
    "Mei",
    "Mila",
    "Nadia",
    "Noah",
    "Nora",
    "Omar",
    "Paula",
    "Priya",
    "Quinn",
    "Rafael",
    "Rosa",
    "Sami",
    "Sara",
    "Tariq",
    "Tessa",
    "Uma",
    "Victor",
    "Wen",
    "Yara",
    "Yusuf",
    "Zoe",
]
LAST = [
    "Abbott",
    "Adeyemi",
    "Bauer",
    "Becker",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Hansen",
    "Ito",
    "Jansen",
    "Kim",
    "Kowalski",
    "Larsen",
    "Lopez",
    "Martin",
    "Meyer",
    "Moreau",
    "Nakamura",
    "Novak",
    "Okafor",
    "Olsen",
    "Patel",
    "Perez",
    "Quist",
    "Rossi",
    "Sato",
    "Schmidt",
    "Silva",
    "Singh",
    "Smith",
    "Tanaka",
    "Torres",
    "Varga",
    "Wagner",
    "Weber",
    "Wong",
    "Yilmaz",
    "Zimmermann",
]
DEPARTMENTS = [
    "Engineering",
    "Sales",
    "Marketing",
    "Finance",
    "Support",
    "Legal",
    "Operations",
    "Research",
    "Design",
    "People",
    "Security",
    "Data",
    "Platform",
    "Mobile",
    "Web",
    "Infrastructure",
    "Procurement",
    "Facilities",
    "Training",
    "Quality",
]
TITLES = ("Engineer", "Manager", "Analyst", "Specialist", "Director", "Coordinator", "Lead", "Associate")


@dataclass(frozen=True)
class Spec:
    users: int = 1000
    groups: int = 50
    memberships: int | None = None  # default: about 3 per user
    seed: int = 42
    suffix: str = "dc=example,dc=com"
    domain: str = "example.com"
    no_email_share: float = 0.02
    disabled_share: float = 0.01


def _uid(i: int) -> str:
    return f"u{i:07d}"


def user_dn(spec: Spec, i: int) -> str:
    return f"uid={_uid(i)},ou=People,{spec.suffix}"


def group_dn(spec: Spec, j: int) -> str:
    return f"cn=group-{j:05d},ou=Groups,{spec.suffix}"


def _group_sizes(spec: Spec, rng: random.Random) -> list[int]:
    total = spec.memberships if spec.memberships is not None else spec.users * 3
    # A skewed (Zipf-like) distribution: a few very large groups, many small ones.
    weights = [1.0 / (j + 1) ** 0.9 for j in range(spec.groups)]
    scale = total / sum(weights)
    return [max(1, min(spec.users, round(w * scale))) for w in weights]


def entries(spec: Spec) -> Iterator[str]:
    rng = random.Random(spec.seed)
    domain_parts = spec.suffix.split(",")[0].split("=")[1]
    yield (
        f"dn: {spec.suffix}\nobjectClass: top\nobjectClass: dcObject\nobjectClass: organization\n"
        f"o: {spec.domain}\ndc: {domain_parts}\n"
    )
    yield f"dn: ou=People,{spec.suffix}\nobjectClass: organizationalUnit\nou: People\n"
    yield f"dn: ou=Groups,{spec.suffix}\nobjectClass: organizationalUnit\nou: Groups\n"
    for i in range(spec.users):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        uid = _uid(i)
        lines = [
            f"dn: {user_dn(spec, i)}",
            "objectClass: inetOrgPerson",
            "objectClass: shadowAccount",
            f"uid: {uid}",
            f"cn: {first} {last}",
            f"sn: {last}",
            f"givenName: {first}",
            f"displayName: {first} {last}",
            f"title: {rng.choice(TITLES)}",
            f"departmentNumber: {rng.choice(DEPARTMENTS)}",
            f"telephoneNumber: +1 555 {rng.randrange(1000000):07d}",
            f"employeeNumber: {100000 + i}",
        ]
        if rng.random() >= spec.no_email_share:
            lines.append(f"mail: {first.lower()}.{last.lower()}.{uid}@{spec.domain}")
        if rng.random() < spec.disabled_share:
            lines.append("shadowExpire: 1")
        yield "\n".join(lines) + "\n"
    sizes = _group_sizes(spec, rng)
    for j, size in enumerate(sizes):
        members = {user_dn(spec, k) for k in rng.sample(range(spec.users), min(size, spec.users))}
        if j >= 5 and j % 5 == 0:  # every fifth group also contains a larger group
            members.add(group_dn(spec, rng.randrange(0, min(j, 5))))
        dept = DEPARTMENTS[j % len(DEPARTMENTS)]
        lines = [
            f"dn: {group_dn(spec, j)}",
            "objectClass: groupOfNames",
            f"cn: group-{j:05d}",
            f"description: {dept} team {j}",
        ]
        lines += [f"member: {m}" for m in sorted(members)]
        yield "\n".join(lines) + "\n"


def write_ldif(spec: Spec, out: TextIO) -> None:
    for entry in entries(spec):
        out.write(entry)
        out.write("\n")

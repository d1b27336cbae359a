"""AD decoding on entries recorded from a real DC, and range retrieval as Windows serves it."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from roster.connectors.ldap.active_directory import (
    ACTIVE_DIRECTORY,
    UserAccountControl,
    sid_to_str,
    str_to_sid,
)
from roster.connectors.ldap.client import LdapClient
from roster.connectors.ldap.config import LdapConfig
from roster.connectors.ldap.entries import EntryDecoder
from roster.domain.mapping import AttributeMapping, decode_attributes, map_user
from roster.domain.records import DirectoryUser

FIXTURES = Path(__file__).parent.parent / "fixtures" / "ad"


def recorded(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "samba-4.17-user-and-group.json").read_text())[name]
    data["attributes"] = {k: [base64.b64decode(v) for v in vs] for k, vs in data["attributes"].items()}
    return data


def test_recorded_user_identity_sid_and_flags() -> None:
    user = recorded("user")
    attrs = user["attributes"]
    assert ACTIVE_DIRECTORY.classify(attrs) == "user"
    guid = ACTIVE_DIRECTORY.identity(user["dn"], attrs)
    assert guid == str(uuid.UUID(bytes_le=attrs["objectGUID"][0]))
    sid = sid_to_str(attrs["objectSid"][0])
    assert sid.startswith("S-1-5-21-") and str_to_sid(sid) == attrs["objectSid"][0]
    assert ACTIVE_DIRECTORY.is_active(attrs, 0) is False  # recorded disabled (userAccountControl 514)
    status = ACTIVE_DIRECTORY.user_status(attrs, 1.8e9, {"lockout_duration": None})
    assert status["user_account_control"] == ["ACCOUNTDISABLE", "NORMAL_ACCOUNT"]
    assert status["locked"] is False and status["object_sid"] == sid
    # primary group: the user's domain SID plus primaryGroupID 513, i.e. Domain Users' SID
    domain_users = recorded("domain_users")["attributes"]
    assert ACTIVE_DIRECTORY.primary_group(attrs) == ACTIVE_DIRECTORY.group_key(domain_users)


def test_recorded_user_maps_without_volatile_or_secret_attributes() -> None:
    attrs = recorded("user")["attributes"]
    decoded = decode_attributes(
        attrs, ACTIVE_DIRECTORY.binary_attributes, ACTIVE_DIRECTORY.volatile_attributes
    )
    record = map_user("x", recorded("user")["dn"], False, decoded, AttributeMapping())
    assert isinstance(record, DirectoryUser)
    assert (record.name, record.email, record.username, record.phone) == (
        "Ada Lovelace",
        "ada@example.com",
        "ada",
        "+44 20 7946 0000",
    )
    raw = json.loads(record.raw_json)
    for volatile in (
        "lastLogon",
        "logonCount",
        "badPwdCount",
        "uSNChanged",
        "whenChanged",
        "memberOf",
        "pwdLastSet",
    ):
        assert volatile not in raw
    assert "objectGUID;base64" in raw and "objectSid;base64" in raw


def test_lockout_and_password_state() -> None:
    attrs = dict(recorded("user")["attributes"])
    now = 1.8e9
    filetime_now = int((now + 11_644_473_600) * 10_000_000)
    attrs["lockoutTime"] = [str(filetime_now - 10 * 60 * 10_000_000).encode()]  # locked 10 minutes ago
    half_hour = 30 * 60 * 10_000_000
    assert ACTIVE_DIRECTORY.user_status(attrs, now, {"lockout_duration": half_hour})["locked"] is True
    assert ACTIVE_DIRECTORY.user_status(attrs, now + 3600, {"lockout_duration": half_hour})["locked"] is False
    assert ACTIVE_DIRECTORY.user_status(attrs, now + 3600, {"lockout_duration": None})["locked"] is True
    attrs["msDS-User-Account-Control-Computed"] = [str(int(UserAccountControl.PASSWORD_EXPIRED)).encode()]
    assert ACTIVE_DIRECTORY.user_status(attrs, now, {})["password_expired"] is True


class ReplayingClient(LdapClient):
    """Answers ranged reads from the recorded Windows-style replies (no server)."""

    def __init__(self) -> None:
        super().__init__(
            LdapConfig(url="ldap://dc.invalid", bind_dn="", bind_password="", search_paths=("DC=x",))
        )
        spec = json.loads((FIXTURES / "ranged-member-ad-style.json").read_text())
        self.replies = {r["request"]: r for r in spec["replies"]}
        self.requests: list[str] = []

    def read(self, dn: str, attributes: Sequence[str]) -> dict[str, list[bytes]] | None:
        (request,) = attributes
        self.requests.append(request)
        reply = self.replies[request]
        values = [
            f"CN=m{i},OU=Staff,DC=x".encode() for i in range(reply["first"], reply["first"] + reply["count"])
        ]
        return {reply["key"]: values}


def test_range_retrieval_collects_every_member() -> None:
    spec = json.loads((FIXTURES / "ranged-member-ad-style.json").read_text())
    first = {spec["first_read_key"]: [f"CN=m{i},OU=Staff,DC=x".encode() for i in range(1500)]}
    config = LdapConfig(
        url="ldap://dc.invalid",
        bind_dn="",
        bind_password="",
        search_paths=("DC=x",),
        flavour="active_directory",
    )
    group = EntryDecoder(config).collect_members("g", "CN=big,DC=x", {"objectClass": [b"group"], **first})
    assert group.more == [("member", 1500)]
    client = ReplayingClient()
    for attribute, start in group.more:
        group.members.extend(v.decode().lower() for v in client.read_ranged(group.dn, attribute, start))
    assert client.requests == ["member;range=1500-*", "member;range=3000-*"]
    assert len(group.members) == len(set(group.members)) == spec["total"]

"""Directory use cases shared by the CLI and the API: create, validate, test, sync."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.engine import Connection

from roster.connectors.base import ConnectionReport
from roster.connectors.ldap.bind import BindOutcome, bind_name, verify_password
from roster.connectors.ldap.config import ConfigError, LdapConfig, validate
from roster.connectors.ldap.connector import LdapConnector
from roster.domain.ldap_path import search_roots
from roster.domain.mapping import AttributeMapping, MappingError
from roster.domain.policy import DeletionGuard
from roster.events.outbox import Outbox
from roster.events.payloads import directory_payload
from roster.runtime import Runtime
from roster.store import repo
from roster.store.db import utcnow
from roster.sync.connectors import LDAP_TYPES, connector_for, ldap_config
from roster.sync.pipeline import Phase, RunResult, run_sync


@dataclass(frozen=True)
class DirectorySpec:
    organization_id: str
    name: str
    type: str
    url: str
    bind_dn: str
    bind_password: str
    search_paths: tuple[str, ...]
    ca_file: str | None = None
    start_tls: bool = False
    insecure_skip_tls_verify: bool = False
    mapping: Mapping[str, Mapping[str, str]] | None = None
    member_range_size: int | None = None
    user_bind_template: str | None = None  # e.g. "{login}@example.local" for pass-through login
    change_detection: str = "auto"  # how incremental runs find changes: auto, dirsync, usn, syncrepl, off
    near_real_time_seconds: int | None = None  # continuous incremental runs this often (roster serve)


def check_spec(spec: DirectorySpec) -> dict[str, Any]:
    """Validate everything that needs no network; return the config to store."""
    if not spec.name.strip():
        raise ConfigError("name: must not be empty")
    if spec.type not in LDAP_TYPES:
        raise ConfigError(f"type: {spec.type!r} is not supported; use one of {', '.join(LDAP_TYPES)}")
    mapping = dict(spec.mapping or {})
    unknown = set(mapping) - {"user", "group"}
    if unknown:
        raise ConfigError(f"mapping: unknown section {sorted(unknown)[0]!r}; use 'user' and 'group'")
    try:
        attribute_mapping = AttributeMapping.from_overrides(mapping.get("user"), mapping.get("group"))
    except MappingError as exc:
        raise ConfigError(str(exc)) from None
    validate(
        LdapConfig(
            url=spec.url,
            bind_dn=spec.bind_dn,
            bind_password=spec.bind_password,
            search_paths=spec.search_paths,
            flavour=spec.type,
            ca_file=spec.ca_file,
            start_tls=spec.start_tls,
            insecure_skip_tls_verify=spec.insecure_skip_tls_verify,
            mapping=attribute_mapping,
            member_range_size=spec.member_range_size,
            change_detection=spec.change_detection,
        )
    )
    if spec.near_real_time_seconds is not None and not 2 <= spec.near_real_time_seconds <= 86400:
        raise ConfigError("near_real_time_seconds: must be between 2 and 86400")
    if spec.near_real_time_seconds is not None and spec.change_detection == "off":
        raise ConfigError("near_real_time_seconds: needs incremental runs (change_detection is off)")
    if spec.user_bind_template is not None:
        try:
            bind_name(spec.user_bind_template, "probe")
        except ValueError as exc:
            raise ConfigError(
                str(exc) if str(exc).startswith("user_bind_template") else f"user_bind_template: {exc}"
            ) from None
    return {
        "user_bind_template": spec.user_bind_template,
        "change_detection": spec.change_detection,
        "near_real_time_seconds": spec.near_real_time_seconds,
        "url": spec.url.rstrip("/"),
        "bind_dn": spec.bind_dn,
        "search_paths": [str(p) for p in search_roots(spec.search_paths)],
        "ca_file": spec.ca_file,
        "start_tls": spec.start_tls,
        "insecure_skip_tls_verify": spec.insecure_skip_tls_verify,
        "mapping": {k: dict(v) for k, v in mapping.items()},
        "member_range_size": spec.member_range_size,
    }


def create_directory(rt: Runtime, spec: DirectorySpec) -> dict[str, Any]:
    config = check_spec(spec)
    sealed = rt.box.seal(spec.bind_password) if spec.bind_password else None
    with rt.engine.begin() as conn:
        return repo.create_directory(conn, spec.organization_id, spec.name.strip(), spec.type, config, sealed)


def verify_directory_password(rt: Runtime, directory_id: str, login: str, password: str) -> BindOutcome:
    """Pass-through authentication against the directory (the login goes through its bind template)."""
    with rt.engine.connect() as conn:
        directory = repo.get_directory(conn, directory_id)
    template = directory["config"].get("user_bind_template") or "{login}"
    return verify_password(ldap_config(directory, rt.box, rt.settings), bind_name(template, login), password)


def test_directory(rt: Runtime, directory_id: str) -> ConnectionReport:
    with rt.engine.connect() as conn:
        directory = repo.get_directory(conn, directory_id)
    connector = connector_for(directory, rt.box, rt.settings)
    assert isinstance(connector, LdapConnector)
    return connector.test()


def sync_directory(
    rt: Runtime,
    directory_id: str,
    *,
    trigger: str = "manual",
    dry_run: bool = False,
    force: bool = False,
    full: bool = False,
    progress: Phase | None = None,
    approved_digest: str | None = None,
    lease_owner: str | None = None,
) -> RunResult:
    with rt.engine.connect() as conn:
        directory = repo.get_directory(conn, directory_id)
    connector = connector_for(directory, rt.box, rt.settings)
    with rt.engine.connect() as conn:
        org = repo.get_organization(conn, directory["organization_id"])
    guard = DeletionGuard(
        org["guard_max_share"] if org["guard_max_share"] is not None else rt.settings.guard_max_share,
        org["guard_min_count"] if org["guard_min_count"] is not None else rt.settings.guard_min_count,
    )
    return run_sync(
        rt.engine,
        directory_id,
        connector,
        trigger=trigger,
        dry_run=dry_run,
        force=force,
        full=full,
        full_every=timedelta(hours=rt.settings.full_resync_hours),
        approved_digest=approved_digest,
        lease_owner=lease_owner,
        guard=guard,
        progress=progress,
    )


def delete_directory(conn: Connection, directory_id: str) -> None:
    """Remove a directory and its cache, announcing ``dsync.deleted`` in the same transaction."""
    row = repo.get_directory(conn, directory_id)
    payload = directory_payload(row)
    payload["state"] = "deleting"
    outbox = Outbox(conn, row["organization_id"], directory_id, utcnow())
    outbox.add("dsync.deleted", json.dumps(payload, separators=(",", ":")))
    outbox.flush()
    repo.delete_directory(conn, directory_id)

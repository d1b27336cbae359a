"""Directory use cases shared by the CLI and the API: create, validate, test, sync."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from sqlalchemy.engine import Connection

from roster.connectors.base import ConfigError, ConnectionReport, ConnectorError, FailureReason
from roster.connectors.ldap.config import check_reach, refused_for_tenant
from roster.domain.policy import DeletionGuard
from roster.egress import directory_reach
from roster.events.outbox import Outbox
from roster.events.payloads import directory_payload
from roster.runtime import Runtime
from roster.scim import tokens as scim_tokens
from roster.settings import Settings
from roster.sources import VerifyOutcome, connector_for, password_check, source_type
from roster.store import repo
from roster.store.db import utcnow
from roster.sync.access_check import OUTAGES, record_access
from roster.sync.pipeline import Phase, RunResult, run_sync


@dataclass(frozen=True)
class DirectorySpec:
    """A directory to create: its type's settings (``roster.sources``) and its secret, if any."""

    organization_id: str
    name: str
    type: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    secret: str | None = None  # e.g. an LDAP bind password; stored encrypted


def check_spec(spec: DirectorySpec) -> dict[str, Any]:
    """Validate everything that needs no network; return the config to store."""
    if not spec.name.strip():
        raise ConfigError("name: must not be empty")
    return source_type(spec.type).check(spec.settings, spec.secret)


SECRETS = ("bind_password", "client_secret", "private_key_pem")


class SecretRequired(ConfigError):
    """A connection setting changed without its secret given again."""

    def __init__(self, field: str, moved: list[str]) -> None:
        super().__init__(
            f"{field}: required when changing {', '.join(moved)} (the stored secret is only "
            "ever sent to the server it was given for)"
        )
        self.field = field


def update_directory_settings(
    rt: Runtime, row: Mapping[str, Any], changes: dict[str, Any], tenant: bool = False, test: bool = False
) -> dict[str, Any]:
    """Change a directory's settings (any of its type's fields, ``name`` and a new secret); every
    check of a new directory applies (``tenant``: the organization itself asks, see
    :func:`tenant_checked`). Returns the updated row."""
    cfg = dict(row["config"])
    cfg_paths = cfg.get("search_paths") or ()
    given = [changes.pop(k) for k in SECRETS if changes.get(k)]
    for key in SECRETS:
        changes.pop(key, None)
    password = given[0] if given else None
    source = source_type(row["type"])
    moved = sorted(k for k in source.connection_fields if k in changes and changes[k] != cfg.get(k))
    if moved and not password:
        raise SecretRequired(source.secret_field or "secret", moved)
    name = changes.pop("name", None) or row["name"]
    if "cloud" in changes:  # a new cloud brings its own hosts unless they are given too
        for key in ("login_url", "graph_url"):
            if key not in changes:
                cfg.pop(key, None)
    cfg.update({k: v for k, v in changes.items() if k != "mapping"})
    if "mapping" in changes:
        cfg["mapping"] = changes["mapping"] or {}
    # the stored secret only lets the check see that there is one; it is sent nowhere
    stored = rt.box.open(row["secret"]) if row["secret"] else None
    spec = DirectorySpec(row["organization_id"], name, row["type"], cfg, password or stored)
    new_cfg = check_spec(spec)
    if new_cfg.get("url") != row["config"].get("url"):
        new_cfg = tenant_checked(rt, new_cfg, tenant)
    elif row["config"].get("tenant_url"):
        new_cfg["tenant_url"] = True
    paths = changes.get("search_paths")
    if test and (moved or password or (paths is not None and list(paths) != list(cfg_paths))):
        # after the network check and with the mark: a test never reaches what a tenant may not
        tested(rt, spec, new_cfg, tenant)  # nothing changes when the new settings do not connect
    values: dict[str, Any] = {"name": name, "config": new_cfg}
    if new_cfg != row["config"]:
        values["cursor"] = None  # new paths, server or mapping: the next run reads everything
    if password:
        values["secret"] = rt.box.seal(password)
    with rt.engine.begin() as conn:
        return repo.update_directory(conn, row["id"], **values)


def tenant_checked(rt: Runtime, config: dict[str, Any], tenant: bool) -> dict[str, Any]:
    """A URL an organization entered (not an operator) is marked, so that every connection to it
    is checked against ``ROSTER_DIRECTORY_ALLOWED_NETWORKS`` (egress), and checked now."""
    config.pop("tenant_url", None)
    if not tenant or not config.get("url"):
        return config
    if config.get("ca_file"):
        raise ConfigError("ca_file: only an operator names a file on the server")
    try:
        check_reach(config["url"], directory_reach(rt.settings.directory_allowed_networks))
    except ConnectorError as exc:
        raise ConfigError(f"url: {exc}") from None
    return {**config, "tenant_url": True}


class ConnectionFailed(ConfigError):
    """A new directory's connection test failed: nothing was stored. ``field`` is the setting
    most likely wrong, ``detail`` what was tried."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f'{field}: {detail} (nothing was stored; --no-test or "test": false stores it)')
        self.field, self.detail = field, detail


REASON_FIELDS = {
    FailureReason.INVALID_CREDENTIALS: "bind_password",
    FailureReason.NO_SUCH_PATH: "search_paths",
}


def tested(rt: Runtime, spec: DirectorySpec, config: dict[str, Any], tenant: bool) -> None:
    """Connect, bind and look up each search path before anything is stored; ConnectionFailed
    names the field most likely wrong and says what was tried."""
    if "url" not in config:
        return  # agent, SCIM: nothing to reach from here yet
    sealed = rt.box.seal(spec.secret) if spec.secret else None
    unsaved: dict[str, Any] = {"id": "unsaved", "organization_id": spec.organization_id, "name": spec.name}
    unsaved |= {"type": spec.type, "config": config, "secret": sealed, "state": "linking"}
    report = test_connection(rt, unsaved, tenant)
    if report.ok:
        return
    missing = [p.path for p in report.paths if not p.ok]
    if missing:
        field, detail = "search_paths", f"{', '.join(missing)} does not exist on {report.server}"
    else:
        field, detail = REASON_FIELDS.get(report.reason, "url"), report.detail  # type: ignore[arg-type]
    raise ConnectionFailed(str(field), str(detail))


def login_warnings(config: Mapping[str, Any]) -> list[str]:
    """What the settings cannot do that an admin would expect (not errors: the directory syncs)."""
    url = str(config.get("url") or "")
    if url.startswith("ldap://") and not config.get("start_tls"):
        return [
            "url: ldap:// without StartTLS: the directory syncs, but users cannot sign in with their "
            "directory password (a password is never sent unencrypted); use ldaps:// or StartTLS"
        ]
    return []


def create_directory(
    rt: Runtime, spec: DirectorySpec, tenant: bool = False, test: bool = False
) -> dict[str, Any]:
    """The new directory's row; a pushed source's (SCIM) also carries ``scim_base_url`` and its
    first bearer token, ``scim_token``, shown this once. ``tenant``: see :func:`tenant_checked`;
    ``test``: refuse (store nothing) unless a connection test passes."""
    config = tenant_checked(rt, check_spec(spec), tenant)
    if test:
        tested(rt, spec, config, tenant)
    sealed = rt.box.seal(spec.secret) if spec.secret else None
    with rt.engine.begin() as conn:
        row = repo.create_directory(conn, spec.organization_id, spec.name.strip(), spec.type, config, sealed)
        if source_type(spec.type).pushed:
            row["scim_base_url"] = scim_base_url(rt.settings, row["id"])
            row["scim_token"] = scim_tokens.issue(conn, row["id"])
    return row


def scim_base_url(settings: Settings, directory_id: str) -> str:
    return f"{settings.public_url.rstrip('/')}/scim/v2/{directory_id}"


def rotate_scim_token(rt: Runtime, directory_id: str, grace: timedelta) -> str:
    """A new bearer token; the current one keeps working for ``grace``."""
    with rt.engine.begin() as conn:
        directory = repo.get_directory(conn, directory_id)
        if not source_type(directory["type"]).pushed:
            raise ConfigError(f"type: a directory of type {directory['type']!r} has no SCIM token")
        return scim_tokens.issue(conn, directory_id, grace)


def verify_directory_password(rt: Runtime, directory_id: str, login: str, password: str) -> VerifyOutcome:
    """Pass-through authentication against the directory (the login goes through its bind template)."""
    from roster.connectors.ldap.bind import bind_name

    with rt.engine.connect() as conn:
        directory = repo.get_directory(conn, directory_id)
    check = password_check(directory, rt.box, rt.settings, rt.engine)
    if check is None:
        raise ConfigError(f"type: directories of type {directory['type']!r} take no password check here")
    template = directory["config"].get("user_bind_template") or "{login}"
    return check(bind_name(template, login), password)


BELOW_LDAP = (FailureReason.UNREACHABLE, FailureReason.TIMEOUT, FailureReason.TLS)


def test_directory(rt: Runtime, directory_id: str, tenant: bool = False) -> ConnectionReport:
    """Connect, bind and look up each search path, waiting ``directory_test_timeout_seconds`` at
    most per step. An organization (``tenant``) gets one answer for every failure below LDAP, so
    the test cannot map which addresses and ports answer on the server's networks."""
    with rt.engine.connect() as conn:
        directory = repo.get_directory(conn, directory_id)
    return test_connection(rt, directory, tenant)


def test_connection(rt: Runtime, directory: Mapping[str, Any], tenant: bool) -> ConnectionReport:
    short = rt.settings.directory_test_timeout_seconds
    settings = rt.settings.model_copy(
        update={
            "ldap_connect_timeout": min(rt.settings.ldap_connect_timeout, short),
            "ldap_operation_timeout": min(rt.settings.ldap_operation_timeout, short),
        }
    )
    report = connector_for(directory, rt.box, settings, rt.engine).test()
    if tenant and not report.ok and report.reason in BELOW_LDAP:
        return replace(report, detail=refused_for_tenant(report.server))
    return report


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
    connector = connector_for(directory, rt.box, rt.settings, rt.engine)
    with rt.engine.connect() as conn:
        org = repo.get_organization(conn, directory["organization_id"])
    guard = DeletionGuard(
        org["guard_max_share"] if org["guard_max_share"] is not None else rt.settings.guard_max_share,
        org["guard_min_count"] if org["guard_min_count"] is not None else rt.settings.guard_min_count,
    )
    result = run_sync(
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
    if result.status == "failed" and result.error_reason in OUTAGES:
        record_access(rt, directory_id, False, result.error or result.error_reason)  # one alert per outage
    elif result.status == "succeeded" and directory["lost_alerted_at"] is not None:
        record_access(rt, directory_id, True, "")
    return result


def delete_directory(conn: Connection, directory_id: str) -> None:
    """Remove a directory and its cache, announcing ``dsync.deleted`` in the same transaction."""
    row = repo.get_directory(conn, directory_id)
    payload = directory_payload(row)
    payload["state"] = "deleting"
    outbox = Outbox(conn, row["organization_id"], directory_id, utcnow())
    outbox.add("dsync.deleted", json.dumps(payload, separators=(",", ":")))
    outbox.flush()
    repo.delete_directory(conn, directory_id)

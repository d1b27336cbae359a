"""How the host application's accounts and groups follow a directory. Pure.

Accounts (the rules of the AD integration guide):
- a directory user whose e-mail equals an unlinked account's e-mail links that account;
- a directory user with no account is provisioned as a new, linked account;
- a linked account takes full name, e-mail and phone from its directory user;
- a directory user that is disabled or gone disables its account ("disabled by directory"),
  never deletes it; one that is active again re-enables it (an admin's own disabling stays).

Groups: every directory group has an application group (source "directory"); one whose
directory group disappeared is removed or kept inactive, as the organization chooses.
Memberships of directory groups follow the directory, groups inside groups included.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DirUserView:
    id: str
    email: str
    name: str | None
    phone: str | None
    active: bool  # active in the directory and still inside its search paths


@dataclass(frozen=True, slots=True)
class AccountView:
    id: str
    email: str
    name: str | None
    phone: str | None
    directory_user_id: str | None
    disabled: bool
    disabled_reason: str | None


@dataclass(frozen=True, slots=True)
class DirGroupView:
    id: str
    idp_id: str
    name: str
    description: str | None


@dataclass(frozen=True, slots=True)
class AppGroupView:
    id: str
    directory_group_id: str | None
    directory_idp_id: str | None
    name: str
    description: str | None
    state: str


@dataclass(frozen=True)
class AccountPlan:
    links: tuple[tuple[str, str], ...] = ()  # (account id, directory user id)
    provisions: tuple[DirUserView, ...] = ()
    updates: tuple[tuple[str, Mapping[str, object]], ...] = ()  # (account id, changed columns)
    skipped: tuple[tuple[str, str], ...] = ()  # (directory user id, reason)


@dataclass(frozen=True)
class GroupPlan:
    creates: tuple[DirGroupView, ...] = ()
    updates: tuple[tuple[str, Mapping[str, object]], ...] = ()  # (app group id, changed columns)
    removes: tuple[str, ...] = ()
    deactivates: tuple[str, ...] = ()


def _state(user: DirUserView, account: AccountView) -> dict[str, object]:
    changes: dict[str, object] = {}
    if not user.active and not account.disabled:
        changes.update(disabled=True, disabled_reason="directory")
    elif user.active and account.disabled and account.disabled_reason == "directory":
        changes.update(disabled=False, disabled_reason=None)
    return changes


def plan_accounts(users: Iterable[DirUserView], accounts: Iterable[AccountView]) -> AccountPlan:
    accounts = list(accounts)
    by_link = {a.directory_user_id: a for a in accounts if a.directory_user_id}
    by_email = {a.email.lower(): a for a in accounts}
    taken = set(by_email)  # e-mails in use, including the ones this plan hands out
    links, provisions, updates, skipped = [], [], [], []
    for user in sorted(users, key=lambda u: u.id):
        email = user.email.lower()
        account = by_link.get(user.id)
        if account is None:
            candidate = by_email.get(email)
            if candidate is not None and candidate.directory_user_id is None:
                links.append((candidate.id, user.id))
                account = candidate
                by_link[user.id] = candidate
            elif candidate is not None:
                skipped.append(
                    (user.id, f"e-mail {user.email} belongs to an account linked to another directory user")
                )
                continue
            elif email in taken:
                skipped.append((user.id, f"e-mail {user.email} is used by another directory user"))
                continue
            else:
                taken.add(email)
                provisions.append(user)
                continue
        changes: dict[str, object] = {}
        if account.email.lower() != email:
            if email in taken:
                skipped.append((user.id, f"new e-mail {user.email} is already used by another account"))
            else:
                changes.update(email=user.email, email_lower=email)
                taken.add(email)
        elif account.email != user.email:
            changes["email"] = user.email
        if account.name != user.name:
            changes["name"] = user.name
        if account.phone != user.phone:
            changes["phone"] = user.phone
        changes.update(_state(user, account))
        if changes:
            updates.append((account.id, changes))
    return AccountPlan(tuple(links), tuple(provisions), tuple(updates), tuple(skipped))


def plan_groups(
    directory_groups: Iterable[DirGroupView], app_groups: Iterable[AppGroupView], policy: str
) -> GroupPlan:
    app_groups = list(app_groups)
    by_dir = {g.directory_group_id: g for g in app_groups if g.directory_group_id}
    by_idp = {
        g.directory_idp_id: g for g in app_groups if g.directory_group_id is None and g.directory_idp_id
    }
    creates, updates = [], []
    seen: set[str] = set()
    for group in sorted(directory_groups, key=lambda g: g.id):
        app = by_dir.get(group.id)
        if app is None:
            app = by_idp.get(group.idp_id)  # a group kept inactive comes back
            if app is None:
                creates.append(group)
                continue
        seen.add(app.id)
        changes: dict[str, object] = {}
        if app.directory_group_id != group.id:
            changes["directory_group_id"] = group.id
        if app.name != group.name:
            changes["name"] = group.name
        if app.description != group.description:
            changes["description"] = group.description
        if app.state != "active":
            changes["state"] = "active"
        if changes:
            updates.append((app.id, changes))
    gone = sorted(g.id for g in app_groups if g.id not in seen and g.directory_group_id is not None)
    if policy == "keep_inactive":
        return GroupPlan(tuple(creates), tuple(updates), (), tuple(gone))
    return GroupPlan(tuple(creates), tuple(updates), tuple(gone), ())


def effective_members(group_id: str, edges: Mapping[str, Iterable[tuple[str, str]]]) -> set[str]:
    """Every account inside ``group_id``, through nested groups; cycles are visited once.

    ``edges`` maps a group id to its direct ``(member id, member type)`` pairs.
    """
    accounts: set[str] = set()
    seen = {group_id}
    stack = [group_id]
    while stack:
        for member, kind in edges.get(stack.pop(), ()):
            if kind == "account":
                accounts.add(member)
            elif member not in seen:
                seen.add(member)
                stack.append(member)
    return accounts


def effective_groups(account_id: str, parents: Mapping[str, Iterable[str]]) -> set[str]:
    """Every group an account is in, directly or through nesting. ``parents`` maps a member id
    (account or group) to the groups that list it directly."""
    found: set[str] = set()
    stack = list(parents.get(account_id, ()))
    while stack:
        group = stack.pop()
        if group not in found:
            found.add(group)
            stack.extend(parents.get(group, ()))
    return found

from roster.domain.linking import (
    AccountView,
    AppGroupView,
    DirGroupView,
    DirUserView,
    effective_groups,
    effective_members,
    plan_accounts,
    plan_groups,
)


def user(uid: str, email: str, active: bool = True, name: str = "N") -> DirUserView:
    return DirUserView(uid, email, name, None, active)


def account(
    aid: str, email: str, link: str | None = None, disabled: bool = False, reason: str | None = None
) -> AccountView:
    return AccountView(aid, email, "N", None, link, disabled, reason)


def test_link_by_email_case_insensitively_and_provision_the_rest() -> None:
    plan = plan_accounts(
        [user("u1", "Ada@Example.com"), user("u2", "bob@example.com")], [account("a1", "ada@example.com")]
    )
    assert plan.links == (("a1", "u1"),)
    assert [p.id for p in plan.provisions] == ["u2"]
    assert plan.updates == (("a1", {"email": "Ada@Example.com"}),)


def test_duplicate_emails_and_taken_emails_are_skipped_with_a_reason() -> None:
    plan = plan_accounts(
        [user("u1", "a@x.io"), user("u2", "A@x.io"), user("u3", "c@x.io")],
        [account("a9", "c@x.io", link="other-user")],
    )
    assert [p.id for p in plan.provisions] == ["u1"]
    reasons = dict(plan.skipped)
    assert "used by another directory user" in reasons["u2"]
    assert "linked to another directory user" in reasons["u3"]


def test_disable_and_enable_follow_the_directory_but_not_an_admins_choice() -> None:
    accounts = [
        account("a1", "a@x.io", link="u1"),
        account("a2", "b@x.io", "u2", True, "directory"),
        account("a3", "c@x.io", "u3", True, "admin"),
    ]
    users = [user("u1", "a@x.io", active=False), user("u2", "b@x.io"), user("u3", "c@x.io")]
    updates = dict(plan_accounts(users, accounts).updates)
    assert updates["a1"] == {"disabled": True, "disabled_reason": "directory"}
    assert updates["a2"] == {"disabled": False, "disabled_reason": None}
    assert "a3" not in updates


def test_group_policy_remove_or_keep_inactive_and_comeback() -> None:
    dir_groups = [DirGroupView("dg1", "idp1", "Eng", None)]
    apps = [
        AppGroupView("g1", "dg1", "idp1", "Old", None, "active"),
        AppGroupView("g2", "dg2", "idp2", "Gone", None, "active"),
        AppGroupView("g3", None, "idp3", "Kept", None, "inactive"),
    ]
    removed = plan_groups(dir_groups, apps, "remove")
    assert removed.updates == (("g1", {"name": "Eng"}),) and removed.removes == ("g2",)
    kept = plan_groups(dir_groups, apps, "keep_inactive")
    assert kept.deactivates == ("g2",) and kept.removes == ()
    back = plan_groups([DirGroupView("dg9", "idp3", "Kept", None)], apps, "remove")
    assert back.creates == () and ("g3", {"directory_group_id": "dg9", "state": "active"}) in back.updates


def test_effective_membership_tolerates_cycles() -> None:
    edges = {"g1": [("a1", "account"), ("g2", "group")], "g2": [("a2", "account"), ("g1", "group")]}
    assert effective_members("g1", edges) == {"a1", "a2"}
    parents = {"a2": ["g2"], "g2": ["g1"], "g1": ["g2"]}
    assert effective_groups("a2", parents) == {"g1", "g2"}

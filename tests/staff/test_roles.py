"""The permission table (issue 16): each role × the actions that tell them apart. Pure: no store."""

from __future__ import annotations

import pytest

from newsletter.errors import UserError
from newsletter.staff import ACTIONS, PERMISSIONS, ROLES, can, check_role

MATRIX = [
    # action, admin, marketer, director
    ("users.manage", True, False, False),
    ("audit.view", True, False, False),
    ("campaigns.force_send", True, False, False),
    ("suppressions.remove", True, False, False),
    ("settings.view", True, False, False),
    ("campaigns.send", True, True, False),
    ("campaigns.schedule", True, True, False),
    ("campaigns.test_send", True, True, False),
    ("campaigns.pause", True, True, False),
    ("campaigns.resolve", True, True, False),
    ("subscribers.edit", True, True, False),
    ("subscribers.import", True, True, False),
    ("articles.import", True, True, False),
    ("segments.view", True, True, False),
    ("nurture.edit", True, True, False),
    ("dashboard.view", True, True, True),
    ("reports.view", True, True, True),
    ("reports.download", True, True, True),
    ("leads.view", True, True, True),
    ("leads.change_status", True, True, True),
    ("nurture.view", True, True, True),
]


@pytest.mark.parametrize(("action", "admin", "marketer", "director"), MATRIX, ids=[row[0] for row in MATRIX])
def test_each_role_may_do_what_the_issue_says(action: str, admin: bool, marketer: bool, director: bool) -> None:
    assert (can("admin", action), can("marketer", action), can("director", action)) == (admin, marketer, director)


def test_the_director_cannot_send_or_edit_subscribers() -> None:
    sending = [a for a in ACTIONS if a.startswith("campaigns.")]
    assert sending and not any(can("director", a) for a in sending)
    assert not any(can("director", a) for a in ACTIONS if a.startswith(("subscribers.", "articles.", "users.")))


def test_admin_may_do_everything_and_each_role_is_a_subset_of_the_next() -> None:
    assert PERMISSIONS["admin"] == ACTIONS
    assert PERMISSIONS["director"] < PERMISSIONS["marketer"] < PERMISSIONS["admin"]
    assert set(PERMISSIONS) == set(ROLES)


def test_an_unknown_action_is_a_mistake_and_an_unknown_role_may_do_nothing() -> None:
    with pytest.raises(ValueError, match="unknown action"):
        can("admin", "campaigns.sned")
    assert not can("owner", "dashboard.view") and not can("", "reports.view")


@pytest.mark.parametrize("raw", ["boss", "", "admin\x00", "Admin!"])
def test_a_bad_role_is_one_line_naming_the_field(raw: str) -> None:
    with pytest.raises(UserError, match=r"^role: .* is not a role; use one of admin, marketer, director$"):
        check_role(raw)


def test_a_role_is_read_in_any_case() -> None:
    assert check_role(" Director ") == "director"

"""The route table covers every admin route, and the one check answers as the roles say."""

from __future__ import annotations

import pytest

from server.access.caller import Caller, Grant, operator
from server.access.policy import FIELD_PERMISSIONS, ROUTE_PERMISSIONS, authorize, authorize_fields, match
from server.access.roles import ROLE_PERMISSIONS, Permission, Role
from server.app import create_app
from server.settings import Settings


def _admin_routes() -> set[tuple[str, str]]:
    schema = create_app(Settings(admin_token="x" * 40)).openapi()
    return {
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        if path.startswith("/admin/")
        for method in operations
    }


def test_every_admin_route_is_in_the_table_and_the_table_names_only_routes() -> None:
    routes = _admin_routes()
    assert routes, "the app serves admin routes"
    assert routes - set(ROUTE_PERMISSIONS) == set(), "admin routes missing from server/access/policy.py"
    assert set(ROUTE_PERMISSIONS) - routes == set(), "stale entries in server/access/policy.py"


def test_each_route_matches_only_its_own_entry() -> None:
    for method, template in ROUTE_PERMISSIONS:
        path = template.replace("{org}", "acme").replace("{ref}", "openai:main").replace("{name}", "bot")
        path = path.replace("{key_id}", "key_1").replace("{token_id}", "tok_1").replace("{user_id}", "usr_1")
        entry, _ = match(method, path)
        assert entry is not None and (entry.method, entry.template) == (method, template)


def _member(role: Role) -> Caller:
    grant = Grant(org_id="org_a", org_name="alpha", role=role)
    return Caller(kind="token", credential="tok_1", label="token:t", grants={"org_a": grant})


@pytest.mark.parametrize("role", list(Role))
def test_a_role_may_exactly_what_its_permissions_say(role: Role) -> None:
    caller = _member(role)
    for (method, template), needed in ROUTE_PERMISSIONS.items():
        if "{org}" not in template:
            continue
        path = template.replace("{org}", "alpha").replace("{ref}", "r").replace("{name}", "n")
        path = path.replace("{key_id}", "k").replace("{token_id}", "t").replace("{user_id}", "u")
        refused = authorize(caller, method, path)
        allowed = needed in ROLE_PERMISSIONS[role]
        assert (refused is None) == allowed, (role, method, template)
        if refused is not None:
            assert refused.status == 403


def test_another_org_reads_exactly_like_an_org_that_does_not_exist() -> None:
    caller = _member(Role.OWNER)
    theirs = authorize(caller, "GET", "/admin/v1/orgs/org_b/connections")
    nobody = authorize(caller, "GET", "/admin/v1/orgs/no-such-org/connections")
    assert theirs is not None and nobody is not None
    assert (theirs.status, theirs.type) == (nobody.status, nobody.type) == (404, "not_found")
    assert theirs.message.replace("org_b", "X") == nobody.message.replace("no-such-org", "X")
    # The caller's own org answers by id and by name.
    assert authorize(caller, "GET", "/admin/v1/orgs/org_a/connections") is None
    assert authorize(caller, "GET", "/admin/v1/orgs/alpha/connections") is None


def test_operator_routes_are_the_operators_alone() -> None:
    assert authorize(_member(Role.OWNER), "POST", "/admin/v1/orgs") is not None
    assert authorize(_member(Role.OWNER), "GET", "/admin/voice/metrics") is not None
    assert authorize(operator("127.0.0.1"), "POST", "/admin/v1/orgs") is None
    # A path the table does not know is closed to everyone but the operator.
    assert authorize(_member(Role.OWNER), "GET", "/admin/v1/something-new") is not None


def test_roles_nest_as_documented() -> None:
    assert ROLE_PERMISSIONS[Role.VIEWER] == {Permission.READ}
    assert ROLE_PERMISSIONS[Role.VIEWER] < ROLE_PERMISSIONS[Role.ADMIN] < ROLE_PERMISSIONS[Role.OWNER]
    assert (
        Permission.BILLING in ROLE_PERMISSIONS[Role.BILLING]
        and Permission.CONFIGURE not in ROLE_PERMISSIONS[Role.BILLING]
    )
    assert all(Permission.OPERATOR not in p for p in ROLE_PERMISSIONS.values())


def test_field_permissions_name_real_routes_and_only_the_operator_changes_a_plan() -> None:
    for method, template, _ in FIELD_PERMISSIONS:
        assert (method, template) in ROUTE_PERMISSIONS
    org = "/admin/v1/orgs/{org}"
    assert authorize_fields(operator(None), "PATCH", org, "org_a", {"tier", "byok_override"}) is None
    for role in Role:
        caller = _member(role)
        assert (
            authorize_fields(caller, "PATCH", org, "org_a", {"monthly_budget"}) is None
        )  # the route's own check covers it
        for name in ("tier", "byok_override"):
            refusal = authorize_fields(caller, "PATCH", org, "org_a", {"monthly_budget", name})
            assert refusal is not None and refusal.status == 403 and name in refusal.message

# Loaded by tests/schemathesis.rs through SCHEMATHESIS_HOOKS.
#
# schemathesis 4.32.5 (the newest release) infers a link from each scope in
# `GET /api/scopes` to `/api/orgs/{org_id}/members/{user_id}`; an org scope's
# `user_id` is null, and schemathesis then requests the literal path segment
# `None`, which the document never declared valid, and reports the 400 as a
# valid request refused. Here a null path value becomes an id no row has
# (the same number the Rust tests call GHOST): a request the document does
# declare valid, answered 404.
import schemathesis

GHOST = 987654321


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    for name, value in list((case.path_parameters or {}).items()):
        if value is None:
            case.path_parameters[name] = GHOST

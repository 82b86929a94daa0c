"""schemathesis hooks of scripts/suites/30-schemathesis: secrets no schema can state.

Some request bodies need a value that only the server's side knows, and any other value is refused
with the reference's wire format (so the operation would never get past its checks):
- `POST /v1/organization/invites/accept` needs a live invite token addressed to the caller (a
  secret only the invite's mail carries; anything else is 400 `invalid_token`). The suite creates
  some before the run, one a line in the file named by ST_INVITE_TOKENS; each is accepted once.
- `POST /v1/web/reset-password` and `POST /v1/web/verify-email` need the live token of an emailed
  link (anything else is 400 `invalid_token`): one a line in ST_RESET_TOKENS / ST_VERIFY_TOKENS,
  each used once.
- `POST /v1/web/confirm-email-change` needs the live token of a change-of-address link
  (ST_EMAIL_CHANGE_TOKENS, one per account, like the reset tokens).
- `POST /v1/web/login` needs an existing account's password (anything else is 401). The suite
  passes the test user's in ST_LOGIN_EMAIL / ST_LOGIN_PASSWORD.
- `POST /v1/account/email`, `/password` and `/delete` need the caller's current password (and
  address), else 403/400: from ST_ACCOUNT_EMAIL / ST_ACCOUNT_PASSWORD, the caller of that run.
This hook puts them into a few positive cases of each phase. Everything else about those requests,
and every negative case, stays as generated.
"""

import os
import threading

import schemathesis

LOGIN = "POST /v1/web/login"
# The operations whose body's `token` is a secret, and the file (env var) of live ones.
TOKEN_FILES = {
    "POST /v1/organization/invites/accept": "ST_INVITE_TOKENS",
    "POST /v1/web/reset-password": "ST_RESET_TOKENS",
    "POST /v1/web/verify-email": "ST_VERIFY_TOKENS",
    "POST /v1/web/confirm-email-change": "ST_EMAIL_CHANGE_TOKENS",
}
# The operations whose body needs the caller's own credentials: field → environment variable.
CREDENTIALS = {
    LOGIN: {"email": "ST_LOGIN_EMAIL", "password": "ST_LOGIN_PASSWORD"},
    "POST /v1/account/email": {"currentPassword": "ST_ACCOUNT_PASSWORD"},
    "POST /v1/account/password": {"currentPassword": "ST_ACCOUNT_PASSWORD"},
    "POST /v1/account/delete": {"email": "ST_ACCOUNT_EMAIL", "password": "ST_ACCOUNT_PASSWORD"},
}
# How many cases of each phase get a known-good value (per operation).
PER_PHASE = {"examples": 1, "coverage": 2, "fuzzing": 4, "stateful": 4}

_lock = threading.Lock()
_tokens: dict[str, list[str]] = {}
_used: dict[tuple[str, str], int] = {}


def _take(label: str, phase: str) -> bool:
    """Whether this case of `label` in `phase` still gets a known-good value."""
    with _lock:
        key = (label, phase)
        if _used.get(key, 0) >= PER_PHASE.get(phase, 0):
            return False
        _used[key] = _used.get(key, 0) + 1
        return True


def _next_token(label: str) -> str | None:
    with _lock:
        if label not in _tokens:
            path = os.environ.get(TOKEN_FILES[label])
            _tokens[label] = []
            if path and os.path.exists(path):
                with open(path, encoding="utf-8") as f:
                    _tokens[label].extend(line.strip() for line in f if line.strip())
        return _tokens[label].pop(0) if _tokens[label] else None


def _phase(case) -> str:
    phase = getattr(getattr(case.meta, "phase", None), "name", None)
    return str(getattr(phase, "value", phase) or "stateful")


def _positive(case) -> bool:
    meta = case.meta
    if meta is None:
        return False
    mode = meta.generation.mode
    return getattr(mode, "value", mode) == "positive"


@schemathesis.hook
def before_call(context, case, kwargs):
    label = case.operation.label
    if label not in (*TOKEN_FILES, *CREDENTIALS) or not isinstance(case.body, dict):
        return
    if not _positive(case):
        return
    if label in TOKEN_FILES and isinstance(case.body.get("token"), str) and _take(label, _phase(case)):
        token = _next_token(label)
        if token is not None:
            case.body["token"] = token
    elif label in CREDENTIALS:
        fields = CREDENTIALS[label]
        if all(os.environ.get(var) for var in fields.values()) and _take(label, _phase(case)):
            for field, var in fields.items():
                case.body[field] = os.environ[var]

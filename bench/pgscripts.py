"""pgbench scripts made from the service's own statements, so the database reference cannot drift
from what the service sends.

A successful booking is two statements, each its own transaction (no BEGIN/COMMIT): the create
(`_PG_WRITE_NEW`: booking row, seat claims against the partial unique index on live claims,
audit row) and the attach of the checkout (`_PG_WRITE_SAVED`: versioned update, claims kept,
audit row). Neither writes an outbox row (no event is due at either step), so both are the
variants without the outbox CTE, as the service sends them. Each parameter `$k` becomes the
value the service would bind, drawn from pgbench variables: a random booking id and show id
from a range wide enough that two transactions practically never share one (claims do not
collide, as in the steady scenario; a collision would abort the run, as it aborts the
service's statement), and 1-4 seats.
"""

from __future__ import annotations

import re
from pathlib import Path

from booking.adapters.sql.repository import _PG_WRITE_NEW, _PG_WRITE_SAVED

_VARIABLES = """\\set bid random(1, 9000000000000000000)
\\set show random(1, 9000000000000000000)
\\set n random(1, 4)
\\set uid random(1, 1000000)
"""

_SEATS = "generate_series(1, :n)"


def _audit(from_status: str) -> list[str]:
    return [
        "(:bid)::bigint",
        "'user:' || :uid",
        "now()",
        f"{from_status}::text",
        "'PENDING'",
        "NULL::text",
        "false",
    ]


# $1.. of `_PG_WRITE_NEW`, in order (see `_new_booking_args`, `_audit_values`).
CREATE_ARGS = [
    "(:bid)::bigint",  # id
    "(:uid)::bigint",  # user_id
    "(:show)::bigint",  # show_id
    "(15000 * :n)::bigint",  # total_minor
    "'INR'",  # currency
    "now() + interval '5 minutes'",  # hold_expires_at
    "now()",  # created_at
    "'PENDING'",  # status
    "NULL::text",  # failure_reason
    "NULL::text",  # payment_session_id
    "NULL::text",  # payment_url
    "NULL::timestamptz",  # payment_expires_at
    "false",  # refund_required
    "1",  # version
    "now()",  # updated_at
    "true",  # seats claimed (a live booking)
    f"ARRAY(SELECT {_SEATS})::bigint[]",  # seat ids
    "ARRAY(SELECT generate_series(0, :n - 1))::smallint[]",  # positions
    f"ARRAY(SELECT '1-' || s FROM {_SEATS} AS s)",  # seat numbers
    "array_fill('SILVER'::text, ARRAY[(:n)::int])",  # seat types
    "array_fill(15000::bigint, ARRAY[(:n)::int])",  # prices
    *_audit("NULL"),
]

# $1.. of `_PG_WRITE_SAVED`, in order (see `write_plain`).
ATTACH_ARGS = [
    "(:bid)::bigint",  # id
    "1",  # expected version
    "'PENDING'",  # status
    "NULL::text",  # failure_reason
    "'cs_bench_' || :bid",  # payment_session_id
    "'http://127.0.0.1:8084/checkout/cs_bench_' || :bid",  # payment_url
    "now() + interval '5 hours'",  # payment_expires_at
    "false",  # refund_required
    "2",  # version
    "now()",  # updated_at
    "true",  # claims live
    "true",  # claim what is not claimed (a live booking)
    *_audit("'PENDING'"),
]


def bind(statement: str, args: list[str]) -> str:
    """`statement` with each `$k` replaced by `args[k - 1]`, on one line (pgbench reads a
    statement per line); a statement whose parameters do not match `args` is an error."""
    used = {int(k) for k in re.findall(r"\$(\d+)", statement)}
    if used != set(range(1, len(args) + 1)):
        raise ValueError(f"the statement takes ${min(used)}-${max(used)}, {len(args)} values given")
    text = re.sub(r"\$(\d+)", lambda m: f"({args[int(m.group(1)) - 1]})", statement)
    lines = (line.split("--", 1)[0].strip() for line in text.splitlines())
    return " ".join(line for line in lines if line) + ";"


def write_script(directory: Path, name: str) -> Path:
    """`name`.sql in `directory`: `create` (the create statement) or `booking` (create, then
    attach); answers its path."""
    # (no outbox row, one audit row): the variant a create and an attach are sent as.
    statements = [bind(_PG_WRITE_NEW[False, True], CREATE_ARGS)]
    if name == "booking":
        statements.append(bind(_PG_WRITE_SAVED[False, True], ATTACH_ARGS))
    elif name != "create":
        raise ValueError(f"no pgbench script {name!r}: create or booking")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.sql"
    path.write_text(
        f"-- {name}: the service's statements\n{_VARIABLES}" + "\n".join(statements) + "\n"
    )
    return path

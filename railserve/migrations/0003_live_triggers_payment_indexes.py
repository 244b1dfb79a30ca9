"""Change notices for live push, written by the database itself.

A notice is due whenever an attempt's card can look different: the payment's status or
refunded amount changed, one of its refunds settled, or its booking's status changed.
Triggers write it in the very transaction that makes the change, so it is delivered
exactly when (and only if) that transaction commits, costs the application no statement
of its own, and covers every writer alike: the app, the sweeper and the operators' console.

- SQLite: a `live_changes` row (the workers of the host read that table).
- PostgreSQL: `pg_notify('railserve_live', key)` (every worker LISTENs). PostgreSQL folds
  identical notices of one transaction into one.

Keys as in `railserve.payment.live`: the transaction id, or `b:<booking id>`.

Also, SQLite only: 0002 rebuilt the payments table there (new columns with database
defaults) and the rebuild lost what 0001 had declared on it: the unique (user_id,
idempotency_key) and the indexes on (booking_id, created_at) and (status, created_at).
Without them every payment post scanned the whole table for its idempotency key.
PostgreSQL kept them; they are made again under the names PostgreSQL has.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops

# Tortoise stores SQLite datetimes as `isoformat(" ")` of an aware UTC time; the sweep
# compares `created_at` as text, so the triggers write the same shape.
SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f000+00:00', 'now')"

SQLITE_PAYMENT_INDEXES = [
    'CREATE UNIQUE INDEX IF NOT EXISTS "uid_payments_user_id_6158d4" '
    'ON "payments" ("user_id", "idempotency_key")',
    'CREATE INDEX IF NOT EXISTS "idx_payments_booking_de0ab1" ON "payments" ("booking_id", "created_at")',
    'CREATE INDEX IF NOT EXISTS "idx_payments_status_33acf4" ON "payments" ("status", "created_at")',
]

SQLITE = [
    *SQLITE_PAYMENT_INDEXES,
    f"""
    CREATE TRIGGER live_payment_changed AFTER UPDATE OF status, refunded_amount ON payments
    FOR EACH ROW
    WHEN OLD.status IS NOT NEW.status OR OLD.refunded_amount IS NOT NEW.refunded_amount
    BEGIN
        INSERT INTO live_changes (transaction_id, created_at)
        VALUES (NEW.transaction_id, {SQLITE_NOW});
    END
    """,
    f"""
    CREATE TRIGGER live_refund_changed AFTER UPDATE OF status ON refunds
    FOR EACH ROW WHEN OLD.status IS NOT NEW.status
    BEGIN
        INSERT INTO live_changes (transaction_id, created_at)
        SELECT transaction_id, {SQLITE_NOW} FROM payments WHERE id = NEW.payment_id;
    END
    """,
    f"""
    CREATE TRIGGER live_booking_changed AFTER UPDATE OF status ON bookings
    FOR EACH ROW WHEN OLD.status IS NOT NEW.status
    BEGIN
        INSERT INTO live_changes (transaction_id, created_at)
        VALUES ('b:' || NEW.id, {SQLITE_NOW});
    END
    """,
]

POSTGRES = [
    """
    CREATE FUNCTION railserve_live_payment() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('railserve_live', NEW.transaction_id);
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER live_payment_changed AFTER UPDATE OF status, refunded_amount ON payments
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status
          OR OLD.refunded_amount IS DISTINCT FROM NEW.refunded_amount)
    EXECUTE FUNCTION railserve_live_payment()
    """,
    """
    CREATE FUNCTION railserve_live_refund() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('railserve_live', transaction_id)
        FROM payments WHERE id = NEW.payment_id;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER live_refund_changed AFTER UPDATE OF status ON refunds
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION railserve_live_refund()
    """,
    """
    CREATE FUNCTION railserve_live_booking() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('railserve_live', 'b:' || NEW.id);
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER live_booking_changed AFTER UPDATE OF status ON bookings
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION railserve_live_booking()
    """,
]

DROP_SQLITE = [  # the payments' indexes stay: 0001 declared them
    "DROP TRIGGER IF EXISTS live_payment_changed",
    "DROP TRIGGER IF EXISTS live_refund_changed",
    "DROP TRIGGER IF EXISTS live_booking_changed",
]
DROP_POSTGRES = [
    "DROP TRIGGER IF EXISTS live_payment_changed ON payments",
    "DROP TRIGGER IF EXISTS live_refund_changed ON refunds",
    "DROP TRIGGER IF EXISTS live_booking_changed ON bookings",
    "DROP FUNCTION IF EXISTS railserve_live_payment()",
    "DROP FUNCTION IF EXISTS railserve_live_refund()",
    "DROP FUNCTION IF EXISTS railserve_live_booking()",
]


async def _run(state_editor, sqlite: list[str], postgres: list[str]) -> None:
    # One statement per call: the SQLite schema editor would split a trigger's body at
    # its semicolons, and RunSQL has no per-dialect form. On SQLite, executescript would
    # commit the migration's transaction halfway: one execute per statement instead.
    client = state_editor.client
    if client.capabilities.dialect == "postgres":
        for statement in postgres:
            await client.execute_script(statement)
    else:
        for statement in sqlite:
            await client.execute_query(statement)


async def create_triggers(_apps, state_editor) -> None:
    await _run(state_editor, SQLITE, POSTGRES)


async def drop_triggers(_apps, state_editor) -> None:
    await _run(state_editor, DROP_SQLITE, DROP_POSTGRES)


class Migration(migrations.Migration):
    dependencies = [("railserve", "0002_refunds_ops_providers_live")]

    initial = False

    operations = [ops.RunPython(create_triggers, drop_triggers)]

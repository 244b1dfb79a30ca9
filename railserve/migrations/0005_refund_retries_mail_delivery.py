"""Failed refunds an operator retries or settles offline, and mail delivered by claim.

Every new column is nullable without a database default, so SQLite adds it in place
(no table rebuild: the live triggers of 0003 on `refunds` stay).
"""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("railserve", "0004_drop_dead_columns")]

    initial = False

    operations = [
        ops.AddField(model_name="Refund", name="retried_attempts", field=fields.IntField(null=True)),
        ops.AddField(
            model_name="Refund",
            name="offline_reference",
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.AddField(model_name="Mail", name="attempts", field=fields.IntField(null=True)),
        ops.AddField(
            model_name="Mail",
            name="claimed_at",
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name="Mail",
            name="next_attempt_at",
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name="Mail",
            name="failed_at",
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name="Mail", name="last_error", field=fields.CharField(null=True, max_length=300)
        ),
    ]

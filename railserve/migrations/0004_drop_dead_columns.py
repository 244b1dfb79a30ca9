"""Drop three columns nothing reads or writes any more.

- `payments.refund_reference` and `payments.refunded_at`: a refund is a `refunds` row
  (0002) with its own gateway reference and settlement time.
- `simulated_charges.refund_reference`: the simulators record each refund in
  `simulated_refunds` (0002); reconciliation reads the money returned from there.

SQLite: Tortoise's `RemoveField` rebuilds the whole table there (create `new__payments`,
copy, drop, rename), and dropping the old table drops its triggers and indexes with it:
the live-push triggers of 0003 and the indexes 0003 had to make again after 0002's
rebuild would be lost without a word. SQLite (3.35 and later) drops a column in place,
keeping everything else on the table, so on SQLite the column goes by `ALTER TABLE …
DROP COLUMN`. PostgreSQL takes Tortoise's own path (the same statement). The migration
state is Tortoise's either way, so `makemigrations` sees the models and the state agree.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops


class DropColumn(ops.RemoveField):
    """`RemoveField` that never rebuilds a SQLite table (which would lose its triggers)."""

    async def database_forward(self, app_label, old_state, new_state, state_editor=None):
        if not state_editor:
            return
        if state_editor.client.capabilities.dialect != "sqlite":
            await super().database_forward(app_label, old_state, new_state, state_editor)
            return
        model = old_state.apps.get_model(f"{app_label}.{self.model_name}")
        field = model._meta.fields_map[self.name]
        column = field.source_field or field.model_field_name
        await state_editor.client.execute_query(
            f'ALTER TABLE "{model._meta.db_table}" DROP COLUMN "{column}"'
        )


class Migration(migrations.Migration):
    dependencies = [("railserve", "0003_live_triggers_payment_indexes")]

    initial = False

    operations = [
        DropColumn(model_name="Payment", name="refund_reference"),
        DropColumn(model_name="Payment", name="refunded_at"),
        DropColumn(model_name="SimulatedCharge", name="refund_reference"),
    ]

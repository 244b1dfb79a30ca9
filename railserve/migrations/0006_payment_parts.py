"""Paying in parts: `payment_parts` (one row per part of a booking on a plan), the
booking's `plan` (existing bookings: all on `full`) and when it was fixed, and each
attempt's `part` with `part_success_lock` (one success per part, refused by a unique key).

Depends on 0003; branches adding 0004-0007 are re-chained at merge. Adding columns with
ALTER TABLE keeps SQLite's payments table (no rebuild: its triggers and indexes stay).
"""

from tortoise import migrations
from tortoise.migrations import operations as ops
from railserve.payment.models import PartStatus
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('railserve', '0005_refund_retries_mail_delivery')]

    initial = False

    operations = [
        ops.CreateModel(
            name='PaymentPart',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('booking', fields.ForeignKeyField('railserve.Booking', source_field='booking_id', db_constraint=True, to_field='id', related_name='parts', on_delete=OnDelete.RESTRICT)),
                ('seq', fields.IntField()),
                ('of', fields.IntField()),
                ('amount', fields.BigIntField()),
                ('currency', fields.CharField(default='INR', max_length=3)),
                ('due_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('status', fields.CharEnumField(default=PartStatus.DUE, description='DUE: due\nPAID: paid\nMISSED: missed\nCANCELLED: cancelled', enum_type=PartStatus, max_length=10)),
                ('reminders_sent', fields.IntField(default=0, db_default=0)),
                ('paid_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'payment_parts', 'app': 'railserve', 'unique_together': (('booking_id', 'seq'),), 'indexes': [Index(fields=['status', 'due_at'])], 'pk_attr': 'id', 'table_description': 'One part of a booking paid on a plan ("Paying in parts"): its amount and due time'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Booking',
            name='plan',
            field=fields.CharField(default='full', db_default='full', max_length=32),
        ),
        ops.AddField(
            model_name='Booking',
            name='plan_fixed_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Payment',
            name='part',
            field=fields.ForeignKeyField('railserve.PaymentPart', source_field='part_id', null=True, db_constraint=True, to_field='id', related_name='payments', on_delete=OnDelete.RESTRICT),
        ),
        ops.AddField(
            model_name='Payment',
            name='part_success_lock',
            field=fields.IntField(null=True, unique=True),
        ),
    ]

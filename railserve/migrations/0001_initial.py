from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from railserve.models import BookingStatus
from railserve.payment.models import Actor, PaymentMethod, PaymentStatus
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='SimulatedCharge',
            fields=[
                ('transaction_id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=19)),
                ('amount', fields.BigIntField()),
                ('currency', fields.CharField(max_length=3)),
                ('succeeded', fields.BooleanField()),
                ('failure_code', fields.CharField(null=True, max_length=40)),
                ('settles_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('refund_reference', fields.CharField(null=True, max_length=40)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'simulated_charges', 'app': 'railserve', 'pk_attr': 'transaction_id', 'table_description': "The simulated gateway's own ledger, as a real gateway keeps one on its side."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Train',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('number', fields.CharField(unique=True, max_length=10)),
                ('name', fields.CharField(max_length=80)),
                ('origin', fields.CharField(max_length=80)),
                ('destination', fields.CharField(max_length=80)),
                ('departs_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('total_seats', fields.IntField()),
                ('seats_left', fields.IntField()),
                ('fare', fields.BigIntField()),
                ('currency', fields.CharField(default='INR', max_length=3)),
            ],
            options={'table': 'trains', 'app': 'railserve', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='User',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(max_length=60)),
                ('email', fields.CharField(unique=True, max_length=254)),
                ('password_hash', fields.CharField(max_length=255)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'users', 'app': 'railserve', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Booking',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('pnr', fields.CharField(unique=True, max_length=10)),
                ('user', fields.ForeignKeyField('railserve.User', source_field='user_id', db_constraint=True, to_field='id', related_name='bookings', on_delete=OnDelete.RESTRICT)),
                ('train', fields.ForeignKeyField('railserve.Train', source_field='train_id', db_constraint=True, to_field='id', related_name='bookings', on_delete=OnDelete.RESTRICT)),
                ('passengers', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('passenger_count', fields.IntField()),
                ('amount', fields.BigIntField()),
                ('currency', fields.CharField(default='INR', max_length=3)),
                ('status', fields.CharEnumField(default=BookingStatus.PENDING_PAYMENT, description='PENDING_PAYMENT: pending_payment\nCONFIRMED: confirmed\nWAITLISTED: waitlisted\nEXPIRED: expired\nCANCELLED: cancelled', enum_type=BookingStatus, max_length=20)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('paid_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'bookings', 'app': 'railserve', 'indexes': [Index(fields=['train_id', 'status', 'paid_at']), Index(fields=['status', 'created_at'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Mail',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('railserve.User', source_field='user_id', db_constraint=True, to_field='id', related_name='mails', on_delete=OnDelete.CASCADE)),
                ('booking', fields.ForeignKeyField('railserve.Booking', source_field='booking_id', null=True, db_constraint=True, to_field='id', related_name='mails', on_delete=OnDelete.SET_NULL)),
                ('to_address', fields.CharField(max_length=254)),
                ('subject', fields.CharField(max_length=200)),
                ('body', fields.TextField(unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('delivered_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'mails', 'app': 'railserve', 'pk_attr': 'id', 'table_description': 'The outbox: every mail the app sends, shown to the user as "sent mail".'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Notification',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('railserve.User', source_field='user_id', db_constraint=True, to_field='id', related_name='notifications', on_delete=OnDelete.CASCADE)),
                ('booking', fields.ForeignKeyField('railserve.Booking', source_field='booking_id', null=True, db_constraint=True, to_field='id', related_name='notifications', on_delete=OnDelete.SET_NULL)),
                ('kind', fields.CharField(max_length=20)),
                ('message', fields.CharField(max_length=300)),
                ('read', fields.BooleanField(default=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'notifications', 'app': 'railserve', 'indexes': [Index(fields=['user_id', 'read'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Payment',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('transaction_id', fields.CharField(unique=True, max_length=19)),
                ('booking', fields.ForeignKeyField('railserve.Booking', source_field='booking_id', db_constraint=True, to_field='id', related_name='payments', on_delete=OnDelete.RESTRICT)),
                ('user', fields.ForeignKeyField('railserve.User', source_field='user_id', db_constraint=True, to_field='id', related_name='payments', on_delete=OnDelete.RESTRICT)),
                ('method', fields.CharEnumField(description='CREDIT_CARD: credit_card\nDEBIT_CARD: debit_card\nNET_BANKING: net_banking\nUPI: upi\nWALLET: wallet', enum_type=PaymentMethod, max_length=20)),
                ('amount', fields.BigIntField()),
                ('currency', fields.CharField(default='INR', max_length=3)),
                ('status', fields.CharEnumField(default=PaymentStatus.PENDING, description='PENDING: pending\nSUCCESS: success\nFAILED: failed\nCANCELLED: cancelled\nREFUNDED: refunded', enum_type=PaymentStatus, max_length=20)),
                ('failure_reason', fields.CharField(null=True, max_length=200)),
                ('retryable', fields.BooleanField(null=True)),
                ('instrument', fields.CharField(max_length=80)),
                ('idempotency_key', fields.CharField(max_length=64)),
                ('pending_lock', fields.IntField(null=True, unique=True)),
                ('success_lock', fields.IntField(null=True, unique=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('completed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('refund_reference', fields.CharField(null=True, max_length=40)),
                ('refunded_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'payments', 'app': 'railserve', 'unique_together': (('user_id', 'idempotency_key'),), 'indexes': [Index(fields=['booking_id', 'created_at']), Index(fields=['status', 'created_at'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PaymentEvent',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('payment', fields.ForeignKeyField('railserve.Payment', source_field='payment_id', db_constraint=True, to_field='id', related_name='events', on_delete=OnDelete.RESTRICT)),
                ('from_status', fields.CharField(null=True, max_length=20)),
                ('to_status', fields.CharField(max_length=20)),
                ('event', fields.CharField(max_length=40)),
                ('actor', fields.CharEnumField(description='USER: user\nGATEWAY: gateway\nSYSTEM: system', enum_type=Actor, max_length=10)),
                ('detail', fields.CharField(default='', max_length=300)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'payment_events', 'app': 'railserve', 'pk_attr': 'id', 'table_description': 'The audit trail: written with the change it records, never updated or deleted.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='WebhookEvent',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('type', fields.CharField(max_length=40)),
                ('transaction_id', fields.CharField(max_length=19)),
                ('received_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'webhook_events', 'app': 'railserve', 'pk_attr': 'id', 'table_description': 'Gateway event ids already applied: a replay is acknowledged without effect.'},
            bases=['Model'],
        ),
    ]

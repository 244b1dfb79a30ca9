from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from railserve.models import Role, TravelClass
from railserve.payment.models import Actor, PaymentStatus, RefundStatus
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('railserve', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='LiveChange',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('transaction_id', fields.CharField(max_length=19)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'live_changes', 'app': 'railserve', 'indexes': [Index(fields=['created_at'])], 'pk_attr': 'id', 'table_description': 'A change to an attempt or its booking, for the event streams of other workers'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='OperatorAction',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('operator', fields.ForeignKeyField('railserve.User', source_field='operator_id', db_constraint=True, to_field='id', related_name='operator_actions', on_delete=OnDelete.RESTRICT)),
                ('action', fields.CharField(max_length=20)),
                ('transaction_id', fields.CharField(null=True, max_length=19)),
                ('reason', fields.CharField(max_length=300)),
                ('detail', fields.CharField(default='', max_length=300)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'operator_actions', 'app': 'railserve', 'indexes': [Index(fields=['created_at'])], 'pk_attr': 'id', 'table_description': 'What an operator did and why: written with the action, never updated or deleted.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Refund',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('refund_id', fields.CharField(unique=True, max_length=19)),
                ('payment', fields.ForeignKeyField('railserve.Payment', source_field='payment_id', db_constraint=True, to_field='id', related_name='refunds', on_delete=OnDelete.RESTRICT)),
                ('passengers', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('amount', fields.BigIntField()),
                ('charge', fields.BigIntField(default=0)),
                ('gst', fields.BigIntField(default=0)),
                ('currency', fields.CharField(default='INR', max_length=3)),
                ('reason', fields.CharField(default='', max_length=300)),
                ('actor', fields.CharEnumField(description='USER: user\nGATEWAY: gateway\nSYSTEM: system\nOPERATOR: operator', enum_type=Actor, max_length=10)),
                ('operator', fields.ForeignKeyField('railserve.User', source_field='operator_id', null=True, db_constraint=True, to_field='id', related_name='refunds_made', on_delete=OnDelete.RESTRICT)),
                ('status', fields.CharEnumField(default=RefundStatus.PENDING, description='PENDING: pending\nSUCCEEDED: succeeded\nFAILED: failed', enum_type=RefundStatus, max_length=10)),
                ('gateway_reference', fields.CharField(null=True, max_length=40)),
                ('attempts', fields.IntField(default=0)),
                ('failure_reason', fields.CharField(null=True, max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('settled_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'refunds', 'app': 'railserve', 'indexes': [Index(fields=['status', 'updated_at']), Index(fields=['payment_id', 'id'])], 'pk_attr': 'id', 'table_description': 'One refund of a payment: written `pending` with the cancellation that causes it,'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SimulatedRefund',
            fields=[
                ('key', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=40)),
                ('refund_id', fields.CharField(max_length=19)),
                ('attempt', fields.IntField()),
                ('provider', fields.CharField(default='simulated', max_length=20)),
                ('transaction_id', fields.CharField(max_length=19)),
                ('amount', fields.BigIntField()),
                ('currency', fields.CharField(max_length=3)),
                ('succeeded', fields.BooleanField()),
                ('failure_reason', fields.CharField(null=True, max_length=200)),
                ('reference', fields.CharField(max_length=40)),
                ('settles_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'simulated_refunds', 'app': 'railserve', 'indexes': [Index(fields=['refund_id', 'attempt']), Index(fields=['transaction_id'])], 'pk_attr': 'key', 'table_description': "The simulators' ledger of refunds: one row per time a refund is asked of them"},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='WebhookLog',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('provider', fields.CharField(max_length=20)),
                ('event_id', fields.CharField(null=True, max_length=64)),
                ('type', fields.CharField(null=True, max_length=40)),
                ('transaction_id', fields.CharField(null=True, max_length=19)),
                ('signature_valid', fields.BooleanField()),
                ('status_code', fields.IntField()),
                ('result', fields.CharField(default='', max_length=300)),
                ('body', fields.TextField(unique=False)),
                ('signature', fields.CharField(null=True, max_length=1000)),
                ('received_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'webhook_log', 'app': 'railserve', 'indexes': [Index(fields=['received_at']), Index(fields=['transaction_id', 'received_at']), Index(fields=['event_id'])], 'pk_attr': 'id', 'table_description': 'Every gateway event received, valid or not, with the answer we gave (operators).'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Booking',
            name='cancelled_positions',
            field=fields.JSONField(default=list, db_default='[]', encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
        ops.AlterField(
            model_name='Payment',
            name='status',
            field=fields.CharEnumField(default=PaymentStatus.PENDING, description='PENDING: pending\nSUCCESS: success\nFAILED: failed\nCANCELLED: cancelled\nPARTIALLY_REFUNDED: partially_refunded\nREFUNDED: refunded', enum_type=PaymentStatus, max_length=20),
        ),
        ops.AddField(
            model_name='Payment',
            name='gateway',
            field=fields.CharField(default='simulated', db_default='simulated', max_length=20),
        ),
        ops.AddField(
            model_name='Payment',
            name='refunded_amount',
            field=fields.BigIntField(default=0, db_default=0),
        ),
        ops.AddIndex(
            model_name='Payment',
            index=Index(fields=['method', 'created_at']),
        ),
        ops.AddIndex(
            model_name='Payment',
            index=Index(fields=['gateway', 'created_at']),
        ),
        ops.AddIndex(
            model_name='Payment',
            index=Index(fields=['created_at']),
        ),
        ops.AlterField(
            model_name='PaymentEvent',
            name='actor',
            field=fields.CharEnumField(description='USER: user\nGATEWAY: gateway\nSYSTEM: system\nOPERATOR: operator', enum_type=Actor, max_length=10),
        ),
        ops.AddField(
            model_name='SimulatedCharge',
            name='provider',
            field=fields.CharField(default='simulated', db_default='simulated', max_length=20),
        ),
        ops.AddField(
            model_name='SimulatedCharge',
            name='refunds_refused',
            field=fields.BooleanField(default=False, db_default=False),
        ),
        ops.AddField(
            model_name='Train',
            name='cancellation_reason',
            field=fields.CharField(null=True, max_length=300),
        ),
        ops.AddField(
            model_name='Train',
            name='cancelled_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Train',
            name='travel_class',
            field=fields.CharEnumField(default=TravelClass.THIRD_AC, description='FIRST_AC: 1A\nEXECUTIVE_CHAIR: EC\nSECOND_AC: 2A\nFIRST_CLASS: FC\nTHIRD_AC: 3A\nTHIRD_AC_ECONOMY: 3E\nCHAIR_CAR: CC\nSLEEPER: SL\nSECOND_SITTING: 2S', db_default='3A', enum_type=TravelClass, max_length=2),
        ),
        ops.AddField(
            model_name='User',
            name='role',
            field=fields.CharEnumField(default=Role.PASSENGER, description='PASSENGER: passenger\nOPERATOR: operator', db_default='passenger', enum_type=Role, max_length=10),
        ),
    ]

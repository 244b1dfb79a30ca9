"""A plain peer: Flask + SQLAlchemy under gunicorn, serving the status JSON from the same table.

It checks the same signed auth cookie as the app (quart-auth's format, itsdangerous with
SHA-512) and runs the same indexed read, so the comparison is of frameworks and servers,
not of work skipped. Bench-only: `pip install '.[bench]'`.

    RAILSERVE_DATABASE_URL=... RAILSERVE_SECRET_KEY=... gunicorn -w 1 bench.flask_peer:app
"""

from __future__ import annotations

import hashlib
import os

from flask import Flask, abort, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import Column, ForeignKey, Integer, String, select


def sqlalchemy_url(url: str) -> str:
    if url.startswith("sqlite://"):
        return "sqlite:///" + url[len("sqlite://") :].split("?")[0]
    return "postgresql+psycopg2://" + url.split("://", 1)[1]


app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = sqlalchemy_url(os.environ["RAILSERVE_DATABASE_URL"])
db = SQLAlchemy(app)
auth = URLSafeTimedSerializer(
    os.environ["RAILSERVE_SECRET_KEY"],
    "quart auth salt",
    signer_kwargs={"digest_method": hashlib.sha512},
)


class Booking(db.Model):
    __tablename__ = "bookings"
    id = Column(Integer, primary_key=True)
    status = Column(String)


class Payment(db.Model):
    __tablename__ = "payments"
    id = Column(Integer, primary_key=True)
    transaction_id = Column(String, unique=True)
    booking_id = Column(Integer, ForeignKey("bookings.id"))
    user_id = Column(Integer)
    status = Column(String)
    amount = Column(Integer)
    currency = Column(String)
    method = Column(String)
    failure_reason = Column(String)


@app.get("/payment/status/<transaction_id>")
def status(transaction_id: str):
    try:
        user_id = int(auth.loads(request.cookies.get("railserve_auth", ""), max_age=14 * 86400))
    except (BadSignature, ValueError):
        abort(401)
    row = db.session.execute(
        select(Payment, Booking.status)
        .join(Booking, Booking.id == Payment.booking_id)
        .where(Payment.transaction_id == transaction_id, Payment.user_id == user_id)
    ).first()
    if row is None:
        abort(404)
    payment, booking_status = row
    final = payment.status in ("failed", "cancelled")
    return jsonify(
        {
            "transaction_id": payment.transaction_id,
            "status": payment.status,
            "booking_id": payment.booking_id,
            "booking_status": booking_status,
            "amount": f"{payment.amount // 100}.{payment.amount % 100:02d}",
            "currency": payment.currency,
            "method": payment.method,
            "failure_reason": payment.failure_reason if final else None,
        }
    )

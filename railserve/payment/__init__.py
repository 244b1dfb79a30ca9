"""The payment blueprint: pay page, attempts, live status, receipts and the webhook."""

from railserve.payment.routes import payment_bp

__all__ = ["payment_bp"]

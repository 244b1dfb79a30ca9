"""Register, log in, log out: accounts with argon2 hashes and quart-auth sessions."""

from __future__ import annotations

import asyncio
import functools
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from quart import Blueprint, Response, redirect, request, url_for
from quart_auth import AuthUser, current_user, login_user, logout_user
from tortoise.exceptions import IntegrityError

from railserve.bounds import EMAIL_MAX, NAME, PASSWORD
from railserve.errors import BadCredentials, Conflict, Invalid
from railserve.limits import login_limits, register_limits
from railserve.models import User
from railserve.security import rotate_csrf
from railserve.templating import render

bp = Blueprint("auth", __name__, url_prefix="/auth")
hasher = PasswordHasher()


def configure_hashing(time_cost: int, memory_cost: int) -> None:
    """Hash new passwords at this argon2 cost (settings; tests lower it). Stored hashes
    carry their own parameters, so every existing password still verifies."""
    global hasher
    if (hasher.time_cost, hasher.memory_cost) != (time_cost, memory_cost):
        hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost)
        _dummy_hash.cache_clear()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the e-mail is unknown, so both answers take the same time.

    Made on first use, not at import: argon2 hashing takes 64 MiB for a moment, and a
    worker that never sees a login should not carry that in its peak memory.
    """
    return hasher.hash("railserve-timing-equaliser")


def _verify(stored: str | None, password: str) -> None:
    hasher.verify(stored or _dummy_hash(), password)


WRONG_LOGIN = "Incorrect e-mail or password."


def current_user_id() -> int:
    return int(current_user.auth_id)


def normalise_email(raw: str) -> str | None:
    raw = raw.strip()
    if not raw or len(raw) > EMAIL_MAX:
        return None
    try:
        result = validate_email(raw, check_deliverability=False)
    except EmailNotValidError:
        return None
    return result.normalized.lower()


def safe_next(target: str | None) -> str:
    """A local path to go to after login, or "/" for anything else."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or any(ch < " " for ch in target):
        return "/"
    return target


async def register_user(name: str, email: str, password: str) -> User:
    errors: dict[str, str] = {}
    name = name.strip()
    if not (NAME.fits(name) and name.isprintable()):
        errors["name"] = f"Enter your name ({NAME.words} characters)."
    normalised = normalise_email(email)
    if normalised is None:
        errors["email"] = "Enter a valid e-mail address."
    if not PASSWORD.fits(password):
        errors["password"] = f"Use {PASSWORD.words} characters."
    if errors:
        raise Invalid("Please correct the highlighted fields.", errors=errors)
    if await User.exists(email=normalised):
        raise _duplicate()
    password_hash = await asyncio.to_thread(hasher.hash, password)
    try:
        return await User.create(name=name, email=normalised, password_hash=password_hash)
    except IntegrityError:
        raise _duplicate() from None


def _duplicate() -> Conflict:
    message = "An account with this e-mail already exists. Log in instead."
    return Conflict(message, errors={"email": message})


async def authenticate(email: str, password: str) -> User:
    normalised = normalise_email(email)
    user = await User.get_or_none(email=normalised) if normalised else None
    if not password or len(password) > PASSWORD.max:
        raise BadCredentials(WRONG_LOGIN, errors={"password": WRONG_LOGIN})
    try:
        await asyncio.to_thread(_verify, user.password_hash if user else None, password)
    except (VerificationError, InvalidHashError):
        user = None
    if user is None:
        raise BadCredentials(WRONG_LOGIN, errors={"password": WRONG_LOGIN})
    return user


@bp.route("/register", methods=["GET", "POST"])
@register_limits
async def register() -> Response | str:
    """Create an account and sign in."""
    if request.method == "GET":
        return await render("auth/register.html", values={}, errors={})
    form = await request.form
    values = {"name": form.get("name", ""), "email": form.get("email", "")}
    try:
        user = await register_user(values["name"], values["email"], form.get("password", ""))
    except (Invalid, Conflict) as error:
        body = await render(
            "auth/register.html", values=values, errors=error.errors, message=error.message
        )
        return Response(body, error.status)
    login_user(AuthUser(str(user.id)), remember=True)
    rotate_csrf()
    return redirect(url_for("booking.home"), 303)


@bp.route("/login", methods=["GET", "POST"])
@login_limits
async def login() -> Response | str:
    """Sign in and go back where the user was heading."""
    next_path = safe_next(request.args.get("next"))
    if request.method == "GET":
        return await render("auth/login.html", values={}, errors={}, next=next_path)
    form = await request.form
    next_path = safe_next(form.get("next") or request.args.get("next"))
    email = form.get("email", "")
    try:
        user = await authenticate(email, form.get("password", ""))
    except BadCredentials as error:
        body = await render(
            "auth/login.html",
            values={"email": email},
            errors=error.errors,
            message=error.message,
            next=next_path,
        )
        return Response(body, error.status)
    login_user(AuthUser(str(user.id)), remember=True)
    rotate_csrf()
    return redirect(next_path, 303)


@bp.post("/logout")
async def logout() -> Response:
    """Sign out."""
    logout_user()
    return redirect(url_for("auth.login"), 303)

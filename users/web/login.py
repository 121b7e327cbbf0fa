"""``--web-login`` that works out of the box: one user, from LOCUST_WEB_USERNAME / LOCUST_WEB_PASSWORD.

Locust leaves the login itself to the locustfile; without it, ``--web-login``
fails on every protected page. Locust's login page posts the form to the
callback named in ``auth_args``.
"""

from __future__ import annotations

import hmac
import os
import secrets
from typing import TYPE_CHECKING

from flask import Blueprint, redirect, request, session, url_for
from flask_login import UserMixin, login_user
from werkzeug.wrappers import Response as BaseResponse

if TYPE_CHECKING:
    from locust.env import Environment

# --web-login: the login form posts here
LOGIN_ROUTE = "/llm/login_submit"


class WebUser(UserMixin):
    def __init__(self, uid: str) -> None:
        self.id = uid


def credentials() -> tuple[str, str] | None:
    user, password = os.environ.get("LOCUST_WEB_USERNAME", ""), os.environ.get("LOCUST_WEB_PASSWORD", "")
    return (user, password) if user and password else None


def install(environment: Environment, login: bool, base: str) -> None:
    """``--web-login`` (``login``) on the web UI served under ``base`` (``--web-base-path``)."""
    web_ui = environment.web_ui
    if web_ui is None or web_ui.app is None or not login:
        return
    creds = credentials()
    assert creds is not None, "checked at start-up"
    user, password = creds
    app = web_ui.app
    app.config["SECRET_KEY"] = os.environ.get("FLASK_SECRET_KEY") or secrets.token_hex(32)
    web_ui.login_manager.user_loader(lambda uid: WebUser(uid) if uid == user else None)
    web_ui.auth_args = {"username_password_callback": f"{base}{LOGIN_ROUTE}"}
    bp = Blueprint("llm_login", __name__, url_prefix=base or None)

    @bp.route(LOGIN_ROUTE, methods=["POST"])
    def login_submit() -> BaseResponse:
        given_user = request.form.get("username", "")
        given_password = request.form.get("password", "")
        if hmac.compare_digest(given_user, user) and hmac.compare_digest(given_password, password):
            login_user(WebUser(user))
            return redirect(url_for("locust.index"))
        session["auth_error"] = "Invalid username or password"
        return redirect(url_for("locust.login"))

    app.register_blueprint(bp)

"""How this client proves who it is to a NATS server, as NATS users set it up.

One of: a credentials file (``creds=PATH``: a user JWT and its nkey seed, as ``nsc``
writes them), an nkey seed (``nkey=PATH``), a token, or a user and password. Secrets
are read from files or the environment (``file:PATH``, ``env:NAME``), never taken from
the command line; a user and password in the URL still work, and are masked in every
message. An nkey proves itself by signing the server's nonce: the seed never leaves
this host.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import nkeys

from hostcore import SECRET_FORMS, OptionError, Refused, read_secret

OPTIONS = {
    "creds": "a NATS credentials file (user JWT and nkey seed, as nsc writes it)",
    "nkey": "a file holding an nkey seed (SU...)",
    "token": f"an authentication token, {SECRET_FORMS}",
    "user": "a user name (with password)",
    "password": f"that user's password, {SECRET_FORMS}",
}
# nsc's layout: each part between dashed BEGIN and END lines.
_CREDS_PART = re.compile(r"-{3,}[^\n]*BEGIN[^\n]*?(JWT|SEED)[^\n]*-{3,}\s*(\S+)\s*-{3,}")


@dataclass(frozen=True, repr=False)  # no repr: it would print the secrets
class Credentials:
    user: str = ""
    password: str = ""
    token: str = ""
    jwt: str = ""
    seed: bytes = b""

    @property
    def method(self) -> str:
        """What is used, for messages: never the secret itself."""
        if self.jwt:
            return "credentials file"
        if self.seed:
            return "nkey"
        if self.token:
            return "token"
        return f"user {self.user!r}" if self.user else "no credentials"

    def connect_fields(self, nonce: str | None) -> dict[str, str]:
        """The CONNECT fields that authenticate, for a server that sent ``nonce``."""
        if self.seed:
            if nonce is None:
                raise Refused(
                    f"the server sent no nonce to sign: it does not take {self.method} logins"
                )
            keys = nkeys.from_seed(self.seed)
            signature = base64.urlsafe_b64encode(keys.sign(nonce.encode())).rstrip(b"=")
            proof = {"jwt": self.jwt} if self.jwt else {"nkey": keys.public_key.decode()}
            return {**proof, "sig": signature.decode()}
        if self.token:
            return {"auth_token": self.token}
        if self.user:
            return {"user": self.user, "pass": self.password}
        return {}


def credentials_from(
    options: Mapping[str, str], url_user: str | None, url_password: str | None
) -> Credentials:
    """The one way of logging in that the options (and the URL's user info) name."""
    given = [name for name in ("creds", "nkey", "token", "user") if name in options]
    if url_user is not None:
        given.append("a user in the URL")
    if len(given) > 1:
        raise OptionError(f"choose one way to log in, not {' and '.join(given)}")
    if "password" in options and "user" not in options:
        raise OptionError("password needs user")
    if "creds" in options:
        return _from_creds_file(options["creds"])
    if "nkey" in options:
        return Credentials(seed=_seed(_read("nkey", options["nkey"]).strip(), "nkey"))
    if "token" in options:
        return Credentials(token=read_secret("token", options["token"]))
    if "user" in options:
        if "password" not in options:
            raise OptionError("user needs password")
        return Credentials(options["user"], read_secret("password", options["password"]))
    if url_user is not None:  # nats://TOKEN@host or nats://USER:PASSWORD@host
        if url_password is None:
            return Credentials(token=url_user)
        return Credentials(url_user, url_password)
    return Credentials()


def _read(name: str, path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as error:
        raise OptionError(f"{name}: cannot read {path}: {error.strerror}") from error


def _seed(text: str, name: str) -> bytes:
    seed = text.encode()
    try:
        nkeys.from_seed(seed)
    except Exception as error:  # nkeys raises its own classes, or binascii's
        raise OptionError(f"{name}: not an nkey seed (SU...): {type(error).__name__}") from error
    return seed


def _from_creds_file(path: str) -> Credentials:
    parts = dict(_CREDS_PART.findall(_read("creds", path)))
    if "JWT" not in parts or "SEED" not in parts:
        raise OptionError(f"creds {path}: not a NATS credentials file (a JWT and a seed)")
    return Credentials(jwt=parts["JWT"], seed=_seed(parts["SEED"], f"creds {path}"))

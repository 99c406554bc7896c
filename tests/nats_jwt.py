"""NATS's decentralized auth, made by the tests as ``nsc`` would: an operator, an account with
JetStream, users with permissions, their credentials files, and the server's configuration.

JWTs are NATS's v2 claims: ``base64url(header).base64url(claims).base64url(signature)``,
the signature an ed25519 one by the issuer's nkey over the first two parts.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nkeys

UNLIMITED = -1


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Key:
    """An nkey of one role (``nkeys.PREFIX_BYTE_OPERATOR``, ``_ACCOUNT`` or ``_USER``)."""

    def __init__(self, role: int) -> None:
        self.seed = nkeys.encode_seed(os.urandom(32), role)
        self.pair = nkeys.from_seed(self.seed)
        self.public = self.pair.public_key.decode()

    def sign_claims(self, subject: str, name: str, nats: dict[str, Any]) -> str:
        header = _b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
        claims = {
            "jti": _b64(os.urandom(18)),
            "iat": int(time.time()),
            "iss": self.public,
            "name": name,
            "sub": subject,
            "nats": {**nats, "version": 2},
        }
        body = f"{header}.{_b64(json.dumps(claims).encode())}"
        return f"{body}.{_b64(self.pair.sign(body.encode()))}"


class Operator:
    """An operator with a system account and one account (JetStream on) for hostcore."""

    def __init__(self) -> None:
        self.key = Key(nkeys.PREFIX_BYTE_OPERATOR)
        self.jwt = self.key.sign_claims(self.key.public, "test operator", {"type": "operator"})
        self.system = Key(nkeys.PREFIX_BYTE_ACCOUNT)
        self.account = Key(nkeys.PREFIX_BYTE_ACCOUNT)
        self.accounts = {
            self.system.public: self._account(self.system, "SYS", jetstream=False),
            self.account.public: self._account(self.account, "FLEET", jetstream=True),
        }

    def _account(self, key: Key, name: str, jetstream: bool) -> str:
        limits = {"subs": UNLIMITED, "data": UNLIMITED, "payload": UNLIMITED}
        limits |= {"imports": UNLIMITED, "exports": UNLIMITED, "wildcards": True}
        limits |= {"conn": UNLIMITED, "leaf": UNLIMITED}
        if jetstream:
            limits |= {"mem_storage": UNLIMITED, "disk_storage": UNLIMITED}
            limits |= {"streams": UNLIMITED, "consumer": UNLIMITED}
        nats = {"type": "account", "limits": limits}
        return self.key.sign_claims(key.public, name, nats)

    def config(self) -> str:
        """The nats-server.conf lines of operator mode (accounts preloaded in memory)."""
        preload = "\n".join(f"  {public}: {jwt}" for public, jwt in self.accounts.items())
        return (
            f"operator: {self.jwt}\nsystem_account: {self.system.public}\n"
            f"resolver: MEMORY\nresolver_preload: {{\n{preload}\n}}\n"
        )

    def creds(
        self, path: Path, name: str, publish: Sequence[str] = (), subscribe: Sequence[str] = ()
    ) -> Path:
        """A credentials file for a new user of the account, allowed only these subjects
        (none given: everything)."""
        user = Key(nkeys.PREFIX_BYTE_USER)
        nats: dict[str, Any] = {"type": "user", "subs": UNLIMITED}
        nats |= {"data": UNLIMITED, "payload": UNLIMITED}
        nats |= {"pub": {"allow": list(publish)} if publish else {}}
        nats |= {"sub": {"allow": list(subscribe)} if subscribe else {}}
        jwt = self.account.sign_claims(user.public, name, nats)
        path.write_text(
            "-----BEGIN NATS USER JWT-----\n"
            f"{jwt}\n"
            "------END NATS USER JWT------\n\n"
            "************************* IMPORTANT *************************\n"
            "NKEY Seed printed below can be used to sign and prove identity.\n\n"
            "-----BEGIN USER NKEY SEED-----\n"
            f"{user.seed.decode()}\n"
            "------END USER NKEY SEED------\n"
        )
        path.chmod(0o600)
        return path

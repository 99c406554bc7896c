"""Which NATS server, and how to reach it: the URL and the options, checked once.

The sink takes them as sink options; ``hostcore tail`` as the URL's query
(``nats://HOST:PORT?stream=NAME&creds=PATH&tls=true&ca_file=PATH``), the same names.
A ``tls://`` URL turns TLS on as ``tls=true`` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from hostcore import TLS_OPTIONS, OptionError, Tls, tls_from
from hostcore_nats.auth import OPTIONS as AUTH_OPTIONS
from hostcore_nats.auth import Credentials, credentials_from
from hostcore_nats.subjects import DEFAULT_STREAM

DEFAULT_PORT = 4222
SCHEMES = ("nats", "tls")
OPTIONS = {
    "stream": f"JetStream stream (default {DEFAULT_STREAM})",
    **TLS_OPTIONS,
    **AUTH_OPTIONS,
}


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    tls: Tls | None
    credentials: Credentials
    stream: str = DEFAULT_STREAM

    @property
    def url(self) -> str:
        """The URL for messages: scheme, host and port, never credentials."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'tls' if self.tls else 'nats'}://{host}:{self.port}"


def server_from(url: str, options: Mapping[str, str]) -> Server:
    """The server ``url`` names, reached as ``options`` say; ``OptionError`` if not."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise OptionError(f"url {shown(url)}: expected nats://HOST:PORT or tls://HOST:PORT (TLS)")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError as error:
        raise OptionError(f"url {shown(url)}: {error}") from error
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return Server(
        host=parts.hostname,
        port=port,
        tls=tls_from(options, required=parts.scheme == "tls"),
        credentials=credentials_from(options, user, password),
        stream=options.get("stream", DEFAULT_STREAM),
    )


def shown(url: str) -> str:
    """``url`` fit for messages and logs: a user name and password in it are left out."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = "***@" + parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=netloc).geturl()

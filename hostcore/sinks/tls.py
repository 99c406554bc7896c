"""TLS for every network sink and source: one option set, one client context, clear refusals.

With ``tls=true`` the server's certificate is always verified (against ``ca_file``, or
the system's CA store) and must carry the name connected to (or ``server_name``);
there is no way to turn that off, and no fallback to clear text. ``cert_file`` and
``key_file`` give this host's certificate to servers that ask for one (mutual TLS).
A handshake that fails says which certificate was refused, by whom, for which name
and why, in words an operator can act on.
"""

from __future__ import annotations

import select
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass

from hostcore.options import OptionError, flag_option

OPTIONS = {
    "tls": "true: TLS, the server's certificate verified (default false)",
    "ca_file": "CA certificates (PEM) the server's must chain to (default: the system's store)",
    "cert_file": "this host's certificate chain (PEM), for servers that ask for one",
    "key_file": "the private key of cert_file (PEM, unencrypted; default: in cert_file)",
    "server_name": "the name the server's certificate must carry (default: the address's host)",
}
# How long a new connection is watched for a refusal of this host's certificate: under
# TLS 1.3 the server checks it after the client has finished its handshake.
REFUSAL_WAIT_S = 0.2

# OpenSSL's names for the alerts a server sends when it refuses the client's certificate.
_CLIENT_CERTIFICATE_REFUSED = (
    "TLSV13_ALERT_CERTIFICATE_REQUIRED",
    "SSLV3_ALERT_BAD_CERTIFICATE",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED",
    "SSLV3_ALERT_CERTIFICATE_REVOKED",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
    "TLSV1_ALERT_UNKNOWN_CA",
    "TLSV1_ALERT_ACCESS_DENIED",
)
# ... and for a peer that does not speak TLS on that port.
_NOT_TLS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG")


class Refused(ConnectionError):
    """The server refused this client: its certificate, its name, or its credentials.

    Retrying as is will not help until one side's configuration changes, so at start
    it is an error, and while running it is logged with this message.
    """


def _encrypted_key() -> str:
    raise OptionError("key_file is encrypted: give hostcore an unencrypted key (mode 0600)")


@dataclass(frozen=True)
class Tls:
    """A verifying client context and what it was made of (for messages)."""

    context: ssl.SSLContext
    ca_file: str | None = None
    cert_file: str | None = None
    server_name: str | None = None

    def name_for(self, host: str) -> str:
        """The name the server's certificate must carry when ``host`` is connected to."""
        return self.server_name or host

    def wrap(self, sock: socket.socket, host: str, peer: str) -> ssl.SSLSocket:
        """``sock`` after a verified handshake; ``Refused`` with the reason if it fails."""
        try:
            secure = self.context.wrap_socket(sock, server_hostname=self.name_for(host))
        except ssl.SSLError as error:
            raise self.refused(error, host, peer) from error
        return secure

    def await_refusal(self, sock: socket.socket, host: str, peer: str) -> None:
        """Wait ``REFUSAL_WAIT_S`` for the server to refuse this host's certificate, for
        servers that never speak first: a refusal then is clear at once, not at a send."""
        deadline = time.monotonic() + REFUSAL_WAIT_S
        while (left := deadline - time.monotonic()) > 0:
            if select.select([sock], [], [], left)[0]:
                check_idle(sock, peer, self, host)

    def refused(self, error: ssl.SSLError, host: str, peer: str) -> Refused:
        """``error`` in words: which certificate was refused, for which name, and why."""
        name = self.name_for(host)
        if isinstance(error, ssl.SSLCertVerificationError):
            against = f"CA file {self.ca_file}" if self.ca_file else "the system's CA store"
            return Refused(
                f"TLS with {peer}: the server's certificate is not trusted for the name "
                f"{name!r}: {error.verify_message} (verified against {against})"
            )
        reason = error.reason or str(error)
        if reason in _CLIENT_CERTIFICATE_REFUSED:
            mine = (
                f"this host's certificate {self.cert_file}"
                if self.cert_file
                else "this host, which has no certificate (set cert_file and key_file)"
            )
            return Refused(f"TLS with {peer}: the server refused {mine}: {reason}")
        if reason in _NOT_TLS:
            return Refused(f"TLS with {peer}: the server does not speak TLS there ({reason})")
        if isinstance(error, ssl.SSLEOFError):
            return Refused(f"TLS with {peer}: the server closed the connection in the handshake")
        return Refused(f"TLS with {peer} failed: {reason}")


def check_idle(sock: socket.socket, peer: str, tls: Tls | None, host: str) -> None:
    """For a readable connection on which the server sends nothing unasked: raise if it
    hung up, refused us or sent data; return if what came was TLS's own (session tickets)."""
    sock.setblocking(False)
    try:
        data = sock.recv(4096)
    except (ssl.SSLWantReadError, BlockingIOError):
        return
    except ssl.SSLError as error:
        if tls is None:
            raise
        raise tls.refused(error, host, peer) from error
    finally:
        sock.setblocking(True)
    raise ConnectionResetError(
        f"{peer} sent data unasked" if data else f"{peer} closed the connection"
    )


def tls_from(options: Mapping[str, str], required: bool = False) -> Tls | None:
    """The TLS the options ask for (``required``: whatever ``tls`` says, as a ``tls://``
    URL does), or None; an option that only TLS uses, given without it, is an error."""
    on = required or flag_option(options, "tls")
    given = [name for name in OPTIONS if name != "tls" and name in options]
    if not on:
        if given:
            raise OptionError(f"{', '.join(given)} need tls=true: without it, no TLS is used")
        return None
    ca_file = options.get("ca_file")
    cert_file, key_file = options.get("cert_file"), options.get("key_file")
    if key_file and not cert_file:
        raise OptionError("key_file needs cert_file, the certificate it is the key of")
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as error:
        raise OptionError(f"ca_file {ca_file}: {_why(error)}") from error
    if cert_file:
        try:
            context.load_cert_chain(cert_file, key_file, password=_encrypted_key)
        except (OSError, ssl.SSLError) as error:
            raise OptionError(
                f"cert_file {cert_file} / key_file {key_file or cert_file}: {_why(error)}"
            ) from error
    server_name = options.get("server_name") or None
    return Tls(context, ca_file, cert_file, server_name)


def _why(error: OSError | ssl.SSLError) -> str:
    if isinstance(error, ssl.SSLError):
        return error.reason or str(error)
    return error.strerror or str(error)

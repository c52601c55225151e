"""A webhook receiver for tests: an HTTP(S) server on a loopback address that answers the statuses
it is given, in turn (then 200), and records every POST; or misbehaves on purpose (``mode``)."""

from __future__ import annotations

import datetime
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MODES = (None, "trickle-head", "trickle-body", "flood")


class Receiver:
    """An HTTP server on ``host`` (127.0.0.1; any 127.x works on Linux) that answers the statuses it
    is given, in turn, and records posts. ``mode``: ``trickle-head`` sends its status line a byte at a
    time, ``trickle-body`` answers 200 then a body a byte at a time without end, ``flood`` answers
    200 then an endless body as fast as it can. ``tls``: (certificate file, key file) to serve HTTPS."""

    def __init__(self, statuses: list[int], *, host: str = "127.0.0.1", port: int = 0, mode: str | None = None,
                 tls: tuple[Path, Path] | None = None):
        assert mode in MODES
        self.statuses, self.posts, self.mode = list(statuses), [], mode
        self.stopped = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append((dict(self.headers), body))
                try:
                    if receiver.mode == "trickle-head":
                        for byte in b"HTTP/1.1 200 OK\r\n" * 1000:
                            if receiver.stopped.wait(0.05):
                                return
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                        return
                    self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                    if receiver.mode is None:
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.end_headers()  # no length: the body runs until the connection closes
                    chunk = b"x" if receiver.mode == "trickle-body" else b"x" * 65536
                    while not receiver.stopped.is_set():
                        self.wfile.write(chunk)
                        self.wfile.flush()
                        if receiver.mode == "trickle-body":
                            time.sleep(0.05)
                except OSError:  # the client hung up: what a bounded client does
                    pass
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.port = self.server.server_address[1]
        self.url = f"{'https' if tls else 'http'}://{host}:{self.port}/hook"

    def close(self) -> None:
        self.stopped.set()
        self.server.shutdown()
        self.server.server_close()


def make_certificate(folder: Path, names: list[str]) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate it signs for ``names``: (CA file, cert file, key file)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ca_file, cert_file, key_file

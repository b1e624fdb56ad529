"""Test PKI: a CA, a server certificate for loopback, client certificates from the right and a foreign CA.

Generated once per test session with `cryptography`, so no certificate ever lives in the repository.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Key = ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class CertBundle:
    ca_file: Path  # the CA that signed the server and the good client certificate
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    client_key_encrypted: Path  # the same key as client_key, protected by key_password
    key_password: str
    foreign_client_cert: Path  # signed by a CA the server does not trust
    foreign_client_key: Path
    foreign_ca_file: Path  # the CA of the foreign client certificate


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _new_key() -> Key:
    # EC keys: generated in milliseconds, unlike RSA, and every TLS stack accepts them.
    return ec.generate_private_key(ec.SECP256R1())


def _sign(
    subject_key: Key,
    subject: str,
    issuer_key: Key,
    issuer: str,
    *,
    is_ca: bool = False,
    usage: x509.ObjectIdentifier | None = None,
    sans: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(subject_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(subject_key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    )
    if is_ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write_cert(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _write_key(path: Path, key: Key, password: str | None = None) -> Path:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    )
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    return path


def generate_certs(directory: Path, *, key_password: str = "client-key-pass-7Qx!") -> CertBundle:
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, foreign_ca_key = _new_key(), _new_key()
    ca_cert = _sign(ca_key, "GigaOffice Test CA", ca_key, "GigaOffice Test CA", is_ca=True)

    server_key = _new_key()
    server_sans: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    server_cert = _sign(
        server_key,
        "localhost",
        ca_key,
        "GigaOffice Test CA",
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        sans=server_sans,
    )
    client_key = _new_key()
    client_cert = _sign(
        client_key, "gigaoffice-client", ca_key, "GigaOffice Test CA", usage=ExtendedKeyUsageOID.CLIENT_AUTH
    )
    foreign_ca_cert = _sign(foreign_ca_key, "Some Other CA", foreign_ca_key, "Some Other CA", is_ca=True)
    foreign_key = _new_key()
    foreign_cert = _sign(
        foreign_key,
        "gigaoffice-client",
        foreign_ca_key,
        "Some Other CA",
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    return CertBundle(
        ca_file=_write_cert(directory / "ca.pem", ca_cert),
        server_cert=_write_cert(directory / "server.pem", server_cert),
        server_key=_write_key(directory / "server.key", server_key),
        client_cert=_write_cert(directory / "client.pem", client_cert),
        client_key=_write_key(directory / "client.key", client_key),
        client_key_encrypted=_write_key(directory / "client-encrypted.key", client_key, key_password),
        key_password=key_password,
        foreign_client_cert=_write_cert(directory / "foreign-client.pem", foreign_cert),
        foreign_client_key=_write_key(directory / "foreign-client.key", foreign_key),
        foreign_ca_file=_write_cert(directory / "foreign-ca.pem", foreign_ca_cert),
    )

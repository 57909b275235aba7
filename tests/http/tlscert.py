"""Certificates for 127.0.0.1 and localhost, made by the tests (never shipped): a
self-signed one, and a chain (root, intermediate, server) like a real deployment's."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Certificate:
    """PEM files of a certificate (``cert``) and its private key (``key``); ``chain`` holds
    the intermediate certificates and ``root`` the CA a client trusts (the certificate
    itself when self-signed)."""

    cert: Path
    key: Path
    chain: Path | None = None
    root: Path | None = None

    def pem(self) -> bytes:
        """Key and certificate in one PEM, as ``PrivateCertificate.loadPEM`` takes them."""
        return self.key.read_bytes() + self.cert.read_bytes()

    @property
    def trusted(self) -> Path:
        """The certificate a client should trust."""
        return self.root if self.root is not None else self.cert


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[str, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool,
    server: bool,
) -> x509.Certificate:
    """A certificate for ``subject``'s ``key``, signed by ``issuer`` (self-signed if None),
    valid a day either side of now, with the extensions strict verifiers (Python 3.13's
    default) require."""
    issuer_name, issuer_key = issuer if issuer is not None else (subject, key)
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def make_certificate(directory: Path) -> Certificate:
    """Write ``cert.pem`` and ``key.pem``: a self-signed EC P-256 certificate for
    ``localhost`` and ``127.0.0.1``, its own CA so a client can trust it as a root."""
    key = ec.generate_private_key(ec.SECP256R1())
    paths = Certificate(cert=directory / "cert.pem", key=directory / "key.pem")
    paths.cert.write_bytes(_pem(_issue("localhost", key, None, ca=True, server=True)))
    _write_key(paths.key, key)
    return paths


def make_chain(directory: Path) -> Certificate:
    """Write a root CA (``root.pem``), an intermediate CA (``chain.pem``) and a server
    certificate it signed (``cert.pem``, key ``key.pem``), as a real CA issues them."""
    root_key, inter_key, key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = _issue("test root", root_key, None, ca=True, server=False)
    inter = _issue("test intermediate", inter_key, ("test root", root_key), ca=True, server=False)
    leaf = _issue("localhost", key, ("test intermediate", inter_key), ca=False, server=True)
    paths = Certificate(
        cert=directory / "cert.pem",
        key=directory / "key.pem",
        chain=directory / "chain.pem",
        root=directory / "root.pem",
    )
    paths.cert.write_bytes(_pem(leaf))
    assert paths.chain is not None and paths.root is not None
    paths.chain.write_bytes(_pem(inter))
    paths.root.write_bytes(_pem(root))
    _write_key(paths.key, key)
    return paths

"""The cluster's certificates: a CA, the apiserver's serving cert, client certs, the SA key.

Why this exists: a real kube-apiserver serves only TLS and authenticates clients by certificate,
so the harness mints a throwaway PKI per cluster (ECDSA P-256: fast to generate). Each component
gets the identity a kubeadm cluster gives it, so RBAC decides as it would there: the admin in
``system:masters``; kube-controller-manager and kube-scheduler as their ``system:`` users, which
the apiserver's bootstrap RBAC policy binds to their roles.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["ClientCert", "Pki", "make_pki"]

_VALIDITY = datetime.timedelta(days=7)


@dataclass(frozen=True)
class ClientCert:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    ca_key: Path
    serving: ClientCert
    admin: ClientCert
    controller_manager: ClientCert
    scheduler: ClientCert
    sa_key: Path
    sa_pub: Path


def _key_usage(*, signs_certificates: bool) -> x509.KeyUsage:
    """Signing only: a leaf signs TLS handshakes, the CA also certificates and CRLs."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signs_certificates,
        crl_sign=signs_certificates,
        encipher_only=False,
        decipher_only=False,
    )


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _issue(
    directory: Path,
    stem: str,
    subject: x509.Name,
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    *,
    server_sans: list[x509.GeneralName] | None = None,
) -> ClientCert:
    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    usages = [ExtendedKeyUsageOID.SERVER_AUTH] if server_sans else [ExtendedKeyUsageOID.CLIENT_AUTH]
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            _key_usage(signs_certificates=False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    if server_sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(server_sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    cert_path = directory / f"{stem}.crt"
    key_path = directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key_path, key)
    return ClientCert(cert_path, key_path)


def make_pki(directory: Path, extra_ips: list[str] | None = None) -> Pki:
    """Mint the PKI into ``directory`` (keys mode 0600)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    now = datetime.datetime.now(datetime.UTC)
    ca_subject = _name("modelfleet-real-cluster-ca")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_subject)
        .issuer_name(ca_subject)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            _key_usage(signs_certificates=True),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_cert = directory / "ca.crt"
    ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    ca_key_path = directory / "ca.key"
    _write_key(ca_key_path, ca_key)
    sans: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.DNSName("kubernetes"),
        x509.DNSName("kubernetes.default"),
        x509.DNSName("kubernetes.default.svc"),
        x509.DNSName("kubernetes.default.svc.cluster.local"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    sans.extend(x509.IPAddress(ipaddress.ip_address(ip)) for ip in extra_ips or [])
    serving = _issue(directory, "apiserver", _name("kube-apiserver"), ca, ca_key, server_sans=sans)
    admin = _issue(directory, "admin", _name("kubernetes-admin", "system:masters"), ca, ca_key)
    kcm = _issue(
        directory, "controller-manager", _name("system:kube-controller-manager"), ca, ca_key
    )
    scheduler = _issue(directory, "scheduler", _name("system:kube-scheduler"), ca, ca_key)
    sa = _key()
    sa_key = directory / "sa.key"
    _write_key(sa_key, sa)
    sa_pub = directory / "sa.pub"
    sa_pub.write_bytes(
        sa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return Pki(ca_cert, ca_key_path, serving, admin, kcm, scheduler, sa_key, sa_pub)

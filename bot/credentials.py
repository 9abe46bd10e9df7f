"""Open Badges 3.0: an award as an ``OpenBadgeCredential``, signed as a VC-JWT.

The credential follows the Open Badges 3.0 data model (a W3C Verifiable
Credential with an ``AchievementSubject`` and its ``Achievement``). It is
signed with the issuer's key in the JSON Web Token proof format that Open
Badges 3.0 defines: the credential in the ``vc`` claim, with ``iss``, ``jti``,
``nbf`` and, when the badge expires, ``exp``. The JOSE header names the key
twice: ``kid`` is the key's URL under the issuer, and ``jwk`` is the public key
itself. The issuer's JWK set is served at ``<issuer id>/jwks`` so a verifier can
check that the key belongs to the issuer.

Each credential's ``credentialStatus`` names its bit in the issuer's revocation
status list (``bot.status_list``), which is signed the same way.

The key is Ed25519 (``EdDSA``) or RSA of at least 2048 bits (``RS256``), read
from ``issuer_key_file``. When that setting is empty, careerbot creates an
Ed25519 key in the data folder on first use.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from jwt.algorithms import OKPAlgorithm, RSAAlgorithm

from bot import status_list
from bot.config import Settings
from bot.models import BadgeAssertion
from bot.openbadges import (
    BadgeDefinition,
    BadgeUrls,
    alignment_documents,
    evidence_documents,
    iso_timestamp,
)

logger = logging.getLogger(__name__)

OB3_CONTEXTS = (
    "https://www.w3.org/ns/credentials/v2",
    "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json",
)
OB3_SCHEMA = "https://purl.imsglobal.org/spec/ob/v3p0/schema/json/ob_v3p0_achievementcredential_schema.json"
GENERATED_KEY_FILE = "issuer-signing-key.pem"
MIN_RSA_BITS = 2048
JWT_MEDIA_TYPE = "application/vc+jwt"

# Members of each key type that RFC 7638 hashes for the JWK thumbprint.
_THUMBPRINT_MEMBERS = {"OKP": ("crv", "kty", "x"), "RSA": ("e", "kty", "n")}


class SigningKeyError(Exception):
    """The issuer's signing key is missing, unreadable or of a type careerbot cannot use."""


@dataclass(frozen=True)
class SigningKey:
    """The issuer's private key with its JWS algorithm and public JWK."""

    private_key: Ed25519PrivateKey | RSAPrivateKey
    algorithm: str
    thumbprint: str
    public_jwk: dict[str, str]

    def __repr__(self) -> str:
        return f"SigningKey({self.algorithm}, thumbprint={self.thumbprint})"

    def published_jwk(self, urls: BadgeUrls) -> dict[str, str]:
        """The public key as it appears in the issuer's JWK set."""
        return {**self.public_jwk, "kid": urls.key(self.thumbprint), "alg": self.algorithm, "use": "sig"}


_keys: dict[Path, SigningKey] = {}
_keys_lock = threading.Lock()


def load_signing_key(settings: Settings) -> SigningKey:
    """Return the issuer's signing key, creating one in the data folder when none is configured.

    Raises:
        SigningKeyError: the configured file cannot be read or holds an unsupported key.
    """
    path = settings.issuer_key_file or settings.data_dir / GENERATED_KEY_FILE
    with _keys_lock:
        cached = _keys.get(path)
        if cached is not None:
            return cached
        if settings.issuer_key_file is None:
            _create_key_file(path)
        key = _read_key_file(path)
        _keys[path] = key
        return key


def _create_key_file(path: Path) -> None:
    """Write a new Ed25519 key to ``path`` (mode 600) unless a file is already there."""
    if path.exists():
        return
    # NOTE: the generated key lives only in the data folder. Losing it leaves
    # every credential signed with it unverifiable against a new key; back it
    # up, or set issuer_key_file to a key kept elsewhere.
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".issuer-key-")
    try:
        os.fchmod(handle, 0o600)
        with os.fdopen(handle, "wb") as stream:
            stream.write(pem)
            stream.flush()
            os.fsync(stream.fileno())
        # link() fails when another worker created the file first; its key wins.
        os.link(temporary, path)
        logger.warning("no issuer_key_file is configured; created an Ed25519 signing key in %s "
                       "(back it up: Open Badges 3.0 credentials are verified with it)", path)
    except FileExistsError:
        pass
    finally:
        Path(temporary).unlink(missing_ok=True)


def _read_key_file(path: Path) -> SigningKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"cannot read the issuer key file {path}: {exc.strerror}") from None
    try:
        private_key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise SigningKeyError(
            f"{path} is not an unencrypted PEM private key; set issuer_key_file to an Ed25519 or RSA key in PEM"
        ) from None

    if isinstance(private_key, Ed25519PrivateKey):
        algorithm = "EdDSA"
        public_jwk = OKPAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    elif isinstance(private_key, RSAPrivateKey):
        if private_key.key_size < MIN_RSA_BITS:
            raise SigningKeyError(f"the RSA key in {path} has {private_key.key_size} bits; use at least {MIN_RSA_BITS}")
        algorithm = "RS256"
        public_jwk = RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    else:
        raise SigningKeyError(f"the key in {path} is a {type(private_key).__name__}; use an Ed25519 or RSA key")

    members = _THUMBPRINT_MEMBERS[public_jwk["kty"]]
    public_jwk = {name: public_jwk[name] for name in members}
    return SigningKey(private_key, algorithm, jwk_thumbprint(public_jwk), public_jwk)


def jwk_thumbprint(public_jwk: dict[str, str]) -> str:
    """Return the RFC 7638 SHA-256 thumbprint of a public JWK, base64url without padding."""
    members = _THUMBPRINT_MEMBERS[public_jwk["kty"]]
    canonical = json.dumps({name: public_jwk[name] for name in members}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def jwks_document(key: SigningKey, urls: BadgeUrls) -> dict[str, Any]:
    """The issuer's JWK set: the public half of the signing key."""
    return {"keys": [key.published_jwk(urls)]}


# --- the credential -------------------------------------------------------------------


def issuer_document(settings: Settings, urls: BadgeUrls) -> dict[str, Any]:
    """The issuer as an Open Badges 3.0 ``Profile``."""
    profile: dict[str, Any] = {
        "id": urls.issuer(),
        "type": ["Profile"],
        "name": settings.issuer_name,
        "url": settings.issuer_url,
        "email": settings.issuer_email,
    }
    if settings.issuer_image:
        profile["image"] = {"id": settings.issuer_image, "type": "Image"}
    return profile


def achievement_document(definition: BadgeDefinition, urls: BadgeUrls) -> dict[str, Any]:
    """The badge as an Open Badges 3.0 ``Achievement``."""
    achievement: dict[str, Any] = {
        "id": urls.badge_class(definition.path),
        "type": ["Achievement"],
        "achievementType": "Badge",
        "name": definition.name,
        "description": definition.description,
        "criteria": {"narrative": definition.criteria},
        "image": {"id": urls.badge_image(definition.path, definition.image_format), "type": "Image"},
        "tag": list(definition.tags),
    }
    alignments = [{"type": ["Alignment"], **entry} for entry in alignment_documents(definition, urls)]
    if alignments:
        achievement["alignment"] = alignments
    return achievement


def credential_document(assertion: BadgeAssertion, definition: BadgeDefinition, settings: Settings,
                        urls: BadgeUrls, *, files_public: bool, status_index: int) -> dict[str, Any]:
    """The award as an unsigned Open Badges 3.0 ``OpenBadgeCredential`` with revocation bit ``status_index``."""
    credential: dict[str, Any] = {
        "@context": list(OB3_CONTEXTS),
        "id": urls.credential(assertion.uid),
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "issuer": issuer_document(settings, urls),
        "validFrom": iso_timestamp(assertion.issued_on),
        "name": definition.name,
        "credentialSubject": {
            "type": ["AchievementSubject"],
            "identifier": [
                {
                    "type": "IdentityObject",
                    "identityHash": assertion.recipient_hash,
                    "identityType": "emailAddress",
                    "hashed": True,
                    "salt": assertion.salt,
                }
            ],
            "achievement": achievement_document(definition, urls),
        },
        "credentialSchema": [{"id": OB3_SCHEMA, "type": "1EdTechJsonSchemaValidator2019"}],
        "credentialStatus": status_list.status_entry(status_index, urls),
    }
    if assertion.expires_at is not None:
        credential["validUntil"] = iso_timestamp(assertion.expires_at)
    evidence = []
    for entry in evidence_documents(assertion, urls, files_public=files_public):
        evidence.append({**entry, "type": ["Evidence"]})
    if evidence:
        credential["evidence"] = evidence
    return credential


def sign_credential(credential: dict[str, Any], assertion: BadgeAssertion, key: SigningKey,
                    urls: BadgeUrls) -> str:
    """Sign ``credential`` as a VC-JWT; return the compact JWS."""
    claims: dict[str, Any] = {
        "vc": credential,
        "iss": credential["issuer"]["id"],
        "jti": credential["id"],
        "nbf": int(assertion.issued_on.timestamp()),
    }
    if assertion.expires_at is not None:
        claims["exp"] = int(assertion.expires_at.timestamp())
    return jwt.encode(claims, key.private_key, algorithm=key.algorithm, headers=_jose_header(key, urls))


def sign_status_list(document: dict[str, Any], valid_from: datetime, key: SigningKey, urls: BadgeUrls) -> str:
    """Sign the status list credential ``document`` as a VC-JWT with the credentials' key and header."""
    claims = {"vc": document, "iss": document["issuer"], "jti": document["id"], "nbf": int(valid_from.timestamp())}
    return jwt.encode(claims, key.private_key, algorithm=key.algorithm, headers=_jose_header(key, urls))


def _jose_header(key: SigningKey, urls: BadgeUrls) -> dict[str, Any]:
    return {"typ": "JWT", "kid": urls.key(key.thumbprint), "jwk": key.public_jwk}

"""Open Badges 3.0: the credential's fields, its VC-JWT signature, and the issuer's published key."""

from __future__ import annotations

import stat

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from bot import baking, credentials, status_list
from bot.config import load_settings
from bot.openbadges import BadgeUrls, badge_definition
from tests.bot.badge_setup import (
    assertions_of,
    client_for,
    custom_flows,
    earn_item_badge,
    earn_level,
    make_engine,  # noqa: F401
)
from tests.bot.scripted import Chat


def write_key(path, private_key) -> None:
    path.write_bytes(private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


async def fetch_credential(engine) -> tuple[str, dict, dict]:
    """Return the VC-JWT of the only assertion, the issuer's JWK set, and the JOSE header."""
    assertion = next(row for row in assertions_of(engine) if row.award.kind == "item")
    urls = BadgeUrls(engine.settings.public_base_url)
    async with client_for(engine) as client:
        response = await client.get(urls.credential(assertion.uid))
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/vc+jwt")
        token = response.text
        header = jwt.get_unverified_header(token)
        issuer_id = jwt.decode(token, options={"verify_signature": False})["iss"]
        jwks = (await client.get(issuer_id + "/jwks")).json()
    return token, jwks, header


def verify_with_published_key(token: str, jwks: dict, header: dict) -> dict:
    """Verify the token as a relying party would: the key comes from the issuer's JWK set, chosen by kid."""
    [published] = [key for key in jwks["keys"] if key["kid"] == header["kid"]]
    public_key = jwt.PyJWK(published).key
    return jwt.decode(token, public_key, algorithms=[published["alg"]])


# --- signing and verification ---------------------------------------------------------------


async def test_jwt_verified_with_published_key(engine):
    earn_item_badge(engine)
    [assertion] = assertions_of(engine)
    urls = BadgeUrls(engine.settings.public_base_url)

    token, jwks, header = await fetch_credential(engine)
    claims = verify_with_published_key(token, jwks, header)

    assert header["alg"] == "EdDSA"
    assert header["typ"] == "JWT"
    assert header["kid"].startswith(urls.issuer() + "/keys/")
    published = jwks["keys"][0]
    assert header["jwk"] == {name: value for name, value in published.items() if name not in ("kid", "alg", "use")}
    assert claims["iss"] == urls.issuer()
    assert claims["jti"] == urls.credential(assertion.uid)
    assert claims["nbf"] == int(assertion.issued_on.timestamp())
    assert "exp" not in claims
    assert claims["vc"]["credentialSubject"]["identifier"][0]["identityHash"] == assertion.recipient_hash


async def test_jwt_fails_with_another_key(engine):
    earn_item_badge(engine)
    token, _, _ = await fetch_credential(engine)
    stranger = ed25519.Ed25519PrivateKey.generate().public_key()

    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, stranger, algorithms=["EdDSA"])


async def test_jwt_tampered_payload_fails(engine):
    earn_item_badge(engine)
    token, jwks, header = await fetch_credential(engine)
    head, payload, signature = token.split(".")
    other = jwt.utils.base64url_encode(jwt.utils.base64url_decode(payload).replace(b"Use career", b"Use careeR"))

    with pytest.raises(jwt.InvalidSignatureError):
        verify_with_published_key(".".join([head, other.decode(), signature]), jwks, header)


async def test_jwt_rs256_with_configured_key(tmp_path, make_engine):
    key_file = tmp_path / "issuer.pem"
    write_key(key_file, rsa.generate_private_key(public_exponent=65537, key_size=2048))
    engine = make_engine(issuer_key_file=key_file)
    earn_item_badge(engine)

    token, jwks, header = await fetch_credential(engine)
    claims = verify_with_published_key(token, jwks, header)

    assert header["alg"] == "RS256"
    assert jwks["keys"][0]["kty"] == "RSA"
    assert claims["vc"]["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
    assert not (tmp_path / "data" / credentials.GENERATED_KEY_FILE).exists()


def test_jwt_exp_from_validity_days(tmp_path, make_engine):
    engine = make_engine(flows_dir=custom_flows(tmp_path, level_1_validity_days=30))
    chat = Chat(engine, "ana")
    chat.finish_plan()
    earn_level(engine, chat, 1)
    level = next(row for row in assertions_of(engine) if row.award.kind == "level")
    key = credentials.load_signing_key(engine.settings)
    urls = BadgeUrls(engine.settings.public_base_url)

    definition = badge_definition(engine.flows.catalog, engine.flows.texts, level.badge_key)
    with engine.session_factory() as session:
        status_index = status_list.index_of(session, level.uid)
    document = credentials.credential_document(level, definition, engine.settings, urls, files_public=False,
                                               status_index=status_index)
    token = credentials.sign_credential(document, level, key, urls)
    claims = jwt.decode(token, key.private_key.public_key(), algorithms=["EdDSA"])

    assert claims["exp"] == int(level.expires_at.timestamp())
    assert claims["vc"]["validUntil"] == document["validUntil"]


async def test_key_url_serves_the_jwk(engine):
    urls = BadgeUrls(engine.settings.public_base_url)
    key = credentials.load_signing_key(engine.settings)

    async with client_for(engine) as client:
        response = await client.get(urls.key(key.thumbprint))
        jwks = (await client.get(urls.jwks())).json()

    assert response.status_code == 200
    assert response.json() == jwks["keys"][0]
    assert response.json()["kid"] == urls.key(key.thumbprint)


async def test_baked_png_credential_verifies(engine):
    earn_item_badge(engine)
    [assertion] = assertions_of(engine)
    urls = BadgeUrls(engine.settings.public_base_url)

    async with client_for(engine) as client:
        png = (await client.get(urls.baked_image(assertion.uid, "png"))).content
        jwks = (await client.get(urls.jwks())).json()
    token = baking.unbake_png(png, baking.OB3_KEYWORD)
    claims = verify_with_published_key(token, jwks, jwt.get_unverified_header(token))

    assert claims["vc"]["id"] == urls.credential(assertion.uid)


# --- the credential's content -------------------------------------------------------------------


async def test_credential_required_fields(engine):
    earn_item_badge(engine)
    token, jwks, header = await fetch_credential(engine)
    urls = BadgeUrls(engine.settings.public_base_url)

    credential = verify_with_published_key(token, jwks, header)["vc"]

    assert credential["@context"] == ["https://www.w3.org/ns/credentials/v2",
                                      "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"]
    assert credential["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
    for field in ("id", "issuer", "validFrom", "credentialSubject", "name"):
        assert credential.get(field), field
    assert credential["issuer"]["id"] == urls.issuer()
    assert credential["issuer"]["type"] == ["Profile"]
    subject = credential["credentialSubject"]
    assert subject["type"] == ["AchievementSubject"]
    identifier = subject["identifier"][0]
    assert identifier["type"] == "IdentityObject"
    assert identifier["identityType"] == "emailAddress"
    assert identifier["hashed"] is True
    achievement = subject["achievement"]
    assert achievement["type"] == ["Achievement"]
    for field in ("id", "name", "description", "criteria"):
        assert achievement.get(field), field
    assert achievement["criteria"]["narrative"].startswith("A program reviewer judged")
    assert achievement["alignment"][0]["type"] == ["Alignment"]
    assert credential["evidence"][0]["type"] == ["Evidence"]


# --- keys -----------------------------------------------------------------------------------------


def test_generated_key_is_private_and_stable(tmp_path):
    settings = load_settings(environ={}, data_dir=tmp_path / "data")

    key = credentials.load_signing_key(settings)

    path = tmp_path / "data" / credentials.GENERATED_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert key.algorithm == "EdDSA"
    reloaded = credentials.load_signing_key(load_settings(environ={}, data_dir=tmp_path / "other",
                                                          issuer_key_file=path))
    assert reloaded.thumbprint == key.thumbprint
    assert "PRIVATE" not in repr(key)


def test_jwk_thumbprint_matches_rfc_7638_example():
    # RFC 7638, section 3.1: the thumbprint of the example RSA key.
    jwk = {
        "kty": "RSA",
        "e": "AQAB",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP"
             "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY3"
             "68QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4"
             "lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
    }

    assert credentials.jwk_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.mark.parametrize("make_key, message", [
    (lambda: ec.generate_private_key(ec.SECP256R1()), "use an Ed25519 or RSA key"),
    (lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024), "use at least 2048"),
])
def test_unsupported_key_rejected(tmp_path, make_key, message):
    key_file = tmp_path / "issuer.pem"
    write_key(key_file, make_key())
    settings = load_settings(environ={}, data_dir=tmp_path / "data", issuer_key_file=key_file)

    with pytest.raises(credentials.SigningKeyError, match=message):
        credentials.load_signing_key(settings)


def test_unreadable_key_file_rejected(tmp_path):
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")

    with pytest.raises(credentials.SigningKeyError, match="not an unencrypted PEM private key"):
        credentials.load_signing_key(load_settings(environ={}, data_dir=tmp_path, issuer_key_file=garbage))
    with pytest.raises(credentials.SigningKeyError, match="cannot read"):
        credentials.load_signing_key(load_settings(environ={}, data_dir=tmp_path,
                                                   issuer_key_file=tmp_path / "missing.pem"))


async def test_bad_key_still_issues_the_2_0_badge(tmp_path, make_engine):
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    engine = make_engine(issuer_key_file=garbage)

    earn_item_badge(engine)

    [assertion] = assertions_of(engine)
    urls = BadgeUrls(engine.settings.public_base_url)
    async with client_for(engine) as client:
        png = (await client.get(urls.baked_image(assertion.uid, "png"))).content
        jwks = await client.get(urls.jwks())
        credential = await client.get(urls.credential(assertion.uid))
    assert baking.unbake_png(png) is not None
    assert baking.unbake_png(png, baking.OB3_KEYWORD) is None
    assert jwks.status_code == 503
    assert credential.status_code == 503

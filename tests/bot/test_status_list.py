"""The revocation status list (W3C Bitstring Status List v1.0) of the Open Badges 3.0 credentials.

The tests decode ``encodedList`` with their own code (base64url, then gunzip),
checked against the example list in the specification, and read bit ``i`` as
bit ``7 - i % 8`` of byte ``i // 8``: index 0 is the most significant bit of the
first byte. Each test that touches the database runs on SQLite and, when
``CAREERBOT_TEST_POSTGRES_URL`` is set, on PostgreSQL.
"""

from __future__ import annotations

import base64
import gzip
import uuid
from datetime import datetime, timedelta, timezone

import jwt
import pytest
from sqlalchemy import func, insert, select

from bot import baking, db, status_list
from bot.models import BadgeAssertion, BadgeAward, CredentialStatus, Learner
from bot.openbadges import BadgeUrls
from tests.bot.badge_setup import (
    assertions_of,
    client_for,
    earn_item_badge,
    make_engine,  # noqa: F401
)
from tests.bot.scripted import Chat, approve
from tests.bot.test_credentials import verify_with_published_key

LIST_BYTES = 16_384
# The encodedList of the example BitstringStatusListCredential in Bitstring Status List v1.0:
# 16 KB of zero bits.
SPEC_EXAMPLE_LIST = "uH4sIAAAAAAAAA-3BMQEAAADCoPVPbQwfoAAAAAAAAAAAAAAAAAAAAIC3AYbSVKsAQAAA"


@pytest.fixture(params=["sqlite", "postgresql"])
def any_engine(request):
    """The engine on a fresh SQLite database, then on a fresh PostgreSQL database."""
    return request.getfixturevalue("engine" if request.param == "sqlite" else "postgres_engine")


def decode_list(encoded: str) -> bytes:
    """Expand an ``encodedList``: multibase prefix ``u``, base64url without padding, then GZIP."""
    assert encoded.startswith("u"), encoded[:10]
    body = encoded[1:]
    assert "=" not in body
    compressed = base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_", validate=True)
    return gzip.decompress(compressed)


def bit(bitstring: bytes, index: int) -> int:
    return (bitstring[index // 8] >> (7 - index % 8)) & 1


def set_bits(bitstring: bytes) -> list[int]:
    return [index for index in range(len(bitstring) * 8) if bit(bitstring, index)]


def status_rows(engine) -> dict[str, CredentialStatus]:
    with engine.session_factory() as session:
        return {row.assertion_uid: row for row in session.scalars(select(CredentialStatus))}


async def fetch_status_list(engine):
    """GET the list and verify its VC-JWT with the issuer's published key; return the response, header and claims."""
    urls = BadgeUrls(engine.settings.public_base_url)
    async with client_for(engine) as client:
        response = await client.get(urls.revocation_list())
        assert response.status_code == 200, response.text
        jwks = (await client.get(urls.jwks())).json()
    header = jwt.get_unverified_header(response.text)
    claims = verify_with_published_key(response.text, jwks, header)
    return response, header, claims


async def list_bits(engine) -> bytes:
    _, _, claims = await fetch_status_list(engine)
    return decode_list(claims["vc"]["credentialSubject"]["encodedList"])


async def credential_status_of(engine, uid: str) -> dict:
    urls = BadgeUrls(engine.settings.public_base_url)
    async with client_for(engine) as client:
        response = await client.get(urls.credential(uid))
        assert response.status_code == 200, response.text
        jwks = (await client.get(urls.jwks())).json()
    claims = verify_with_published_key(response.text, jwks, jwt.get_unverified_header(response.text))
    return claims["vc"]["credentialStatus"]


def allocate(engine, uids, **options) -> list[int]:
    now = datetime.now(timezone.utc)
    with engine.session_factory() as session, session.begin():
        return [status_list.allocate(session, uid, now, **options) for uid in uids]


# --- encoding ------------------------------------------------------------------------------------


def test_decoder_reads_spec_example():
    assert decode_list(SPEC_EXAMPLE_LIST) == bytes(LIST_BYTES)


def test_encode_bits_0_and_9():
    bitstring = decode_list(status_list.encode_list([0, 9], status_list.LIST_MIN_BITS))

    assert len(bitstring) == LIST_BYTES
    assert bitstring[:3] == bytes([0x80, 0x40, 0x00])
    assert bitstring[2:] == bytes(LIST_BYTES - 2)


@pytest.mark.parametrize("index, byte, value", [
    (0, 0, 0x80),
    (7, 0, 0x01),
    (8, 1, 0x80),
    (9, 1, 0x40),
    (131_071, LIST_BYTES - 1, 0x01),
])
def test_encode_one_bit_position(index, byte, value):
    bitstring = decode_list(status_list.encode_list([index], status_list.LIST_MIN_BITS))

    assert bitstring[byte] == value
    assert set_bits(bitstring) == [index]


def test_encode_empty_list_is_zero_bytes():
    encoded = status_list.encode_list([], status_list.LIST_MIN_BITS)

    assert decode_list(encoded) == bytes(LIST_BYTES)
    assert encoded == status_list.encode_list([], status_list.LIST_MIN_BITS)
    assert len(encoded) < 200


@pytest.mark.parametrize("indexes, size", [([-1], 131_072), ([131_072], 131_072), ([], 131_071), ([], 0)])
def test_encode_rejects_bad_input(indexes, size):
    with pytest.raises(ValueError):
        status_list.encode_list(indexes, size)


def test_encoded_list_is_base64url_without_padding():
    encoded = status_list.encode_list(range(0, 131_072, 3), status_list.LIST_MIN_BITS)

    assert "=" not in encoded
    assert "+" not in encoded
    assert "/" not in encoded


@pytest.mark.parametrize("highest, size", [(None, 131_072), (0, 131_072), (131_071, 131_072),
                                           (131_072, 262_144), (600_000, 1_048_576)])
def test_list_size_contains_highest_index(highest, size):
    assert status_list.list_size(highest) == size


# --- the entry in each credential -------------------------------------------------------------


async def test_credential_names_its_status_entry(any_engine):
    earn_item_badge(any_engine)
    [assertion] = assertions_of(any_engine)
    urls = BadgeUrls(any_engine.settings.public_base_url)
    index = status_rows(any_engine)[assertion.uid].status_list_index

    entry = await credential_status_of(any_engine, assertion.uid)

    assert entry == {
        "id": f"{urls.revocation_list()}#{index}",
        "type": "BitstringStatusListEntry",
        "statusPurpose": "revocation",
        "statusListIndex": str(index),
        "statusListCredential": urls.revocation_list(),
    }
    assert 0 <= index < status_list.LIST_MIN_BITS


async def test_baked_png_names_same_entry(engine):
    chat = Chat(engine, "ana")
    chat.finish_plan()

    messages = approve(engine, chat.submit_reflection("use-career-services"))

    [message] = [message for message in messages if message.document is not None]
    [assertion] = assertions_of(engine)
    token = baking.unbake_png(message.document.content, baking.OB3_KEYWORD)
    baked_entry = jwt.decode(token, options={"verify_signature": False})["vc"]["credentialStatus"]
    assert baked_entry == await credential_status_of(engine, assertion.uid)
    assert baked_entry["statusListIndex"] == str(status_rows(engine)[assertion.uid].status_list_index)


# --- the list credential -----------------------------------------------------------------------


async def test_status_list_jwt_verifies(any_engine):
    earn_item_badge(any_engine)
    urls = BadgeUrls(any_engine.settings.public_base_url)
    before = datetime.now(timezone.utc).replace(microsecond=0)

    response, header, claims = await fetch_status_list(any_engine)

    assert response.headers["content-type"].startswith("application/vc+jwt")
    assert response.headers["cache-control"] == "public, max-age=300"
    assert response.headers["access-control-allow-origin"] == "*"
    assert header["alg"] == "EdDSA"
    assert header["typ"] == "JWT"
    assert header["kid"].startswith(urls.issuer() + "/keys/")
    assert claims["iss"] == urls.issuer()
    assert claims["jti"] == urls.revocation_list()
    document = claims["vc"]
    assert document["@context"] == ["https://www.w3.org/ns/credentials/v2"]
    assert document["id"] == urls.revocation_list()
    assert document["type"] == ["VerifiableCredential", "BitstringStatusListCredential"]
    assert document["issuer"] == urls.issuer()
    valid_from = datetime.fromisoformat(document["validFrom"])
    assert before <= valid_from <= datetime.now(timezone.utc)
    assert claims["nbf"] == int(valid_from.timestamp())
    subject = document["credentialSubject"]
    assert subject["id"] == urls.revocation_list() + "#list"
    assert subject["type"] == "BitstringStatusList"
    assert subject["statusPurpose"] == "revocation"
    assert subject["ttl"] == 300_000
    assert decode_list(subject["encodedList"]) == bytes(LIST_BYTES)


async def test_status_list_unavailable_without_key(tmp_path, make_engine):
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    engine = make_engine(issuer_key_file=garbage)

    async with client_for(engine) as client:
        response = await client.get(BadgeUrls(engine.settings.public_base_url).revocation_list())

    assert response.status_code == 503


async def test_revoked_bit_one_valid_bit_zero(any_engine):
    earn_item_badge(any_engine, "ana")
    earn_item_badge(any_engine, "bo", name="Bo", email="bo@example.edu")
    revoked, valid = assertions_of(any_engine)
    revoked_entry = await credential_status_of(any_engine, revoked.uid)
    valid_entry = await credential_status_of(any_engine, valid.uid)
    revoked_index = int(revoked_entry["statusListIndex"])
    valid_index = int(valid_entry["statusListIndex"])
    before = await list_bits(any_engine)

    Chat(any_engine, "coordinator").send(f"/revoke {revoked.uid} issued to the wrong learner")
    after = await list_bits(any_engine)

    assert revoked_index != valid_index
    assert bit(before, revoked_index) == 0
    assert bit(after, revoked_index) == 1
    assert bit(after, valid_index) == 0
    assert set_bits(after) == [revoked_index]
    row = status_rows(any_engine)[revoked.uid]
    assert row.revoked_at is not None
    assert row.revocation_reason == "issued to the wrong learner"


async def test_forget_sets_the_bit(any_engine):
    ana = earn_item_badge(any_engine, "ana")
    earn_item_badge(any_engine, "bo", name="Bo", email="bo@example.edu")
    forgotten, remaining = assertions_of(any_engine)
    forgotten_index = int((await credential_status_of(any_engine, forgotten.uid))["statusListIndex"])
    remaining_index = int((await credential_status_of(any_engine, remaining.uid))["statusListIndex"])
    urls = BadgeUrls(any_engine.settings.public_base_url)

    ana.send("/forget")
    ana.press("forget_confirm:delete")

    bits = await list_bits(any_engine)
    assert [assertion.uid for assertion in assertions_of(any_engine)] == [remaining.uid]
    assert bit(bits, forgotten_index) == 1
    assert bit(bits, remaining_index) == 0
    row = status_rows(any_engine)[forgotten.uid]
    assert row.status_list_index == forgotten_index
    assert row.revocation_reason == "withdrawn by the learner"
    async with client_for(any_engine) as client:
        credential = await client.get(urls.credential(forgotten.uid))
        assertion = await client.get(urls.assertion(forgotten.uid))
        page = await client.get(urls.verify_page(forgotten.uid))
    assert credential.status_code == 410
    assert assertion.status_code == 410
    assert assertion.json()["revoked"] is True
    assert assertion.json()["revocationReason"] == "withdrawn by the learner"
    assert page.status_code == 410
    assert "Badge no longer valid" in page.text
    assert "Ana" not in page.text


async def test_forget_keeps_coordinator_reason(engine):
    ana = earn_item_badge(engine, "ana")
    [assertion] = assertions_of(engine)
    Chat(engine, "coordinator").send(f"/revoke {assertion.uid} duplicate award")
    revoked_at = status_rows(engine)[assertion.uid].revoked_at

    ana.send("/forget")
    ana.press("forget_confirm:delete")

    row = status_rows(engine)[assertion.uid]
    assert row.revocation_reason == "duplicate award"
    assert row.revoked_at == revoked_at
    assert bit(await list_bits(engine), row.status_list_index) == 1


# --- allocating indexes ----------------------------------------------------------------------------


def test_allocate_unique_random_indexes(any_engine):
    uids = [str(uuid.uuid4()) for _ in range(2000)]

    indexes = allocate(any_engine, uids)

    assert len(set(indexes)) == len(indexes)
    assert all(0 <= index < status_list.LIST_MIN_BITS for index in indexes)
    assert indexes != sorted(indexes)
    # 2000 uniform draws leave the lowest and highest quarter empty with a chance of 0.75**2000.
    assert min(indexes) < status_list.LIST_MIN_BITS // 4
    assert max(indexes) > status_list.LIST_MIN_BITS * 3 // 4
    rows = status_rows(any_engine)
    assert {uid: rows[uid].status_list_index for uid in uids} == dict(zip(uids, indexes))


def test_allocate_retries_taken_index(any_engine):
    [taken] = allocate(any_engine, ["1b4e28ba-2fa1-41d2-883f-0016d3cca427"], choose_index=lambda size: 42)
    draws = iter([42, 42, 7])

    [index] = allocate(any_engine, ["6fa459ea-ee8a-4ca4-894e-db77e160355e"], choose_index=lambda size: next(draws))

    assert taken == 42
    assert index == 7
    assert {row.status_list_index for row in status_rows(any_engine).values()} == {42, 7}


def test_allocate_fails_when_draws_taken(any_engine):
    allocate(any_engine, ["1b4e28ba-2fa1-41d2-883f-0016d3cca427"], choose_index=lambda size: 42)

    with pytest.raises(status_list.StatusListError, match="no free status list index"):
        allocate(any_engine, ["6fa459ea-ee8a-4ca4-894e-db77e160355e"], choose_index=lambda size: 42)

    assert len(status_rows(any_engine)) == 1


def test_allocate_keeps_existing_entry(any_engine):
    uid = "1b4e28ba-2fa1-41d2-883f-0016d3cca427"
    [first] = allocate(any_engine, [uid], choose_index=lambda size: 5)

    [second] = allocate(any_engine, [uid], choose_index=lambda size: 6)

    assert second == first == 5
    assert len(status_rows(any_engine)) == 1


async def test_list_grows_past_half_full(any_engine):
    half = status_list.LIST_MIN_BITS // 2
    now = datetime.now(timezone.utc)
    rows = [{"status_list_index": index, "assertion_uid": f"filler-{index}", "allocated_at": now}
            for index in range(half - 1)]
    with any_engine.session_factory() as session, session.begin():
        session.execute(insert(CredentialStatus), rows)
        assert status_list.allocation_size(session) == status_list.LIST_MIN_BITS
        session.add(CredentialStatus(status_list_index=half, assertion_uid="filler-last", allocated_at=now))
        session.flush()
        assert status_list.allocation_size(session) == 2 * status_list.LIST_MIN_BITS
        far = status_list.allocate(session, "far", now, choose_index=lambda size: size - 1)
        status_list.mark_revoked(session, ["far"], now, "test")

    bits = await list_bits(any_engine)

    assert far == 2 * status_list.LIST_MIN_BITS - 1
    assert len(bits) == 2 * LIST_BYTES
    assert set_bits(bits) == [far]


# --- the migration -----------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'migrate.sqlite3'}"
    return request.getfixturevalue("postgres_database")


def test_migration_allocates_existing_assertions(database_url):
    engine = db.make_engine(database_url)
    db.upgrade(engine, "0006")
    now = datetime.now(timezone.utc).replace(microsecond=0)
    uids = [str(uuid.uuid4()) for _ in range(3)]
    with db.transaction(db.make_session_factory(engine)) as session:
        learner = Learner(platform="console", platform_user_id="ana", chat_id="ana", state="home")
        session.add(learner)
        session.flush()
        for number, uid in enumerate(uids):
            award = BadgeAward(learner_id=learner.id, badge_key=f"badge-{number}", kind="item", name="Badge")
            session.add(award)
            session.flush()
            session.add(BadgeAssertion(uid=uid, award_id=award.id, learner_id=learner.id, badge_key=award.badge_key,
                                       recipient_hash="sha256$00", salt="00", issued_on=now - timedelta(days=1),
                                       revoked_at=now if number == 0 else None,
                                       revocation_reason="duplicate award" if number == 0 else None))

    db.upgrade(engine)

    with engine.connect() as connection:
        rows = {row.assertion_uid: row for row in connection.execute(select(CredentialStatus.__table__))}
        count = connection.scalar(select(func.count()).select_from(CredentialStatus.__table__))
    engine.dispose()
    assert set(rows) == set(uids)
    assert count == 3
    assert len({row.status_list_index for row in rows.values()}) == 3
    assert all(0 <= row.status_list_index < status_list.LIST_MIN_BITS for row in rows.values())
    assert rows[uids[0]].revocation_reason == "duplicate award"
    assert rows[uids[0]].revoked_at is not None
    assert [rows[uid].revoked_at for uid in uids[1:]] == [None, None]


"""The revocation status list of Open Badges 3.0 credentials, as a W3C Bitstring Status List.

W3C Bitstring Status List v1.0 (https://www.w3.org/TR/vc-bitstring-status-list/)
lets a verifier check a credential's status from a list that the issuer signs,
with no request that names the credential. Each credential names one bit of the
list in its ``credentialStatus`` (a ``BitstringStatusListEntry``), and that bit is 1
once the credential is revoked. careerbot publishes one list, with the purpose
``revocation``, at ``<base>/ob/status/revocation``.

The specification's rules that this module follows:

- ``statusListIndex`` is an integer written as a base-10 string, and indexes
  should be assigned at random, so that a position reveals nothing about when a
  credential was issued or how many were issued (section "BitstringStatusListEntry").
- The uncompressed bitstring is at least 16 KB, 131,072 bits, the minimum for
  group privacy. A verifier rejects a shorter list with STATUS_LIST_LENGTH_ERROR.
- ``encodedList`` is the GZIP-compressed bitstring in multibase base64url without
  padding (prefix ``u``). Index 0 is the left-most bit of the bitstring, which is the
  most significant bit of the first byte (sections "BitstringStatusListCredential"
  and "Bitstring Encoding").

The list starts at 131,072 bits and doubles whenever a new entry would fill more
than half of it, so a random index is free with a probability of at least 1/2, and
the list grows instead of running out of indexes.
"""

from __future__ import annotations

import base64
import gzip
import logging
import secrets
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.models import CredentialStatus
from bot.openbadges import BadgeUrls, iso_timestamp

logger = logging.getLogger(__name__)

LIST_MIN_BITS = 131_072
STATUS_PURPOSE = "revocation"
VC_CONTEXT = "https://www.w3.org/ns/credentials/v2"
TTL_SECONDS = 300
"""Seconds a verifier may use a fetched list: the route's Cache-Control max-age, and the list's ``ttl`` in ms."""
MAX_ALLOCATION_ATTEMPTS = 64
"""Random draws before allocation fails.

The list is at most half full, so 64 clashes in a row have a chance of at most 2**-64.
"""
FORGOTTEN_REASON = "withdrawn by the learner"
"""The revocation reason stored for the assertions that a learner's /forget deleted."""


class StatusListError(Exception):
    """No free index could be allocated in the revocation status list."""


# --- entries ----------------------------------------------------------------------------


def index_of(session: Session, assertion_uid: str) -> int | None:
    """Return the assertion's index in the list, or None when it has no entry."""
    return session.scalar(
        select(CredentialStatus.status_list_index).where(CredentialStatus.assertion_uid == assertion_uid)
    )


def withdrawn_entry(session: Session, assertion_uid: str) -> CredentialStatus | None:
    """Return the revoked entry of ``assertion_uid``, or None when it has none or is not revoked.

    An entry outlives its assertion, so this also finds the badges that /forget deleted.
    """
    return session.scalar(select(CredentialStatus).where(CredentialStatus.assertion_uid == assertion_uid,
                                                          CredentialStatus.revoked_at.is_not(None)))


def ensure_index(session: Session, assertion_uid: str, now: datetime) -> int:
    """Return the assertion's index, allocating one when the assertion has none yet."""
    index = index_of(session, assertion_uid)
    if index is not None:
        return index
    return allocate(session, assertion_uid, now)


def allocation_size(session: Session) -> int:
    """Return the number of bits a new index is drawn from: the list stays at most half full."""
    entries = session.scalar(select(func.count()).select_from(CredentialStatus)) or 0
    size = LIST_MIN_BITS
    while entries + 1 > size // 2:
        size *= 2
    return size


def allocate(session: Session, assertion_uid: str, now: datetime, *,
             choose_index: Callable[[int], int] = secrets.randbelow) -> int:
    """Insert an entry at a random free index for ``assertion_uid`` and return the index.

    The primary key on the index rejects a taken index, including one that a
    concurrent transaction has just inserted. A savepoint undoes only that insert,
    and another index is drawn. An assertion that already has an entry keeps it.
    ``choose_index(size)`` returns a number in ``range(size)``.

    Raises:
        StatusListError: every one of ``MAX_ALLOCATION_ATTEMPTS`` draws was taken.
    """
    # Flush pending changes first, so that an IntegrityError below can only come from this insert.
    session.flush()
    size = allocation_size(session)
    for attempt in range(1, MAX_ALLOCATION_ATTEMPTS + 1):
        index = choose_index(size)
        try:
            with session.begin_nested():
                session.execute(insert(CredentialStatus).values(
                    status_list_index=index, assertion_uid=assertion_uid, allocated_at=now))
        except IntegrityError:
            existing = index_of(session, assertion_uid)
            if existing is not None:
                return existing
            logger.info("status list index %d is taken, drawing another for assertion %s (attempt %d of %d)",
                        index, assertion_uid, attempt, MAX_ALLOCATION_ATTEMPTS)
            continue
        logger.debug("assertion %s has status list index %d", assertion_uid, index)
        return index
    raise StatusListError(f"no free status list index for assertion {assertion_uid} "
                          f"in {MAX_ALLOCATION_ATTEMPTS} random draws from {size}")


def mark_revoked(session: Session, assertion_uids: Iterable[str], revoked_at: datetime, reason: str) -> int:
    """Set the bits of ``assertion_uids`` to revoked and return how many entries changed.

    An entry that is already revoked keeps its date and reason.
    """
    uids = list(assertion_uids)
    if not uids:
        return 0
    result = session.execute(
        update(CredentialStatus)
        .where(CredentialStatus.assertion_uid.in_(uids), CredentialStatus.revoked_at.is_(None))
        .values(revoked_at=revoked_at, revocation_reason=reason)
        .execution_options(synchronize_session=False)
    )
    logger.info("status list: %d of %d assertion(s) marked revoked (%s)", result.rowcount, len(uids), reason)
    return result.rowcount


def status_entry(index: int, urls: BadgeUrls) -> dict[str, Any]:
    """Return the ``credentialStatus`` of a credential whose bit is ``index``."""
    list_url = urls.revocation_list()
    return {
        "id": f"{list_url}#{index}",
        "type": "BitstringStatusListEntry",
        "statusPurpose": STATUS_PURPOSE,
        "statusListIndex": str(index),
        "statusListCredential": list_url,
    }


# --- the list ---------------------------------------------------------------------------


def list_size(highest_index: int | None) -> int:
    """Return the list's length in bits: 131,072, doubled until it contains ``highest_index``."""
    size = LIST_MIN_BITS
    while highest_index is not None and highest_index >= size:
        size *= 2
    return size


def encode_list(set_indexes: Iterable[int], size_bits: int) -> str:
    """Return the ``encodedList`` of a bitstring of ``size_bits`` bits in which ``set_indexes`` are 1.

    Raises:
        ValueError: ``size_bits`` is not a whole number of bytes, or an index is outside the list.
    """
    if size_bits <= 0 or size_bits % 8:
        raise ValueError(f"a status list has a positive whole number of bytes, not {size_bits} bits")
    bitstring = bytearray(size_bits // 8)
    for index in set_indexes:
        if not 0 <= index < size_bits:
            raise ValueError(f"index {index} is outside the status list of {size_bits} bits")
        bitstring[index // 8] |= 0x80 >> (index % 8)
    # mtime=0 leaves the time out of the GZIP header, so equal lists encode equally.
    compressed = gzip.compress(bytes(bitstring), mtime=0)
    return "u" + base64.urlsafe_b64encode(compressed).rstrip(b"=").decode("ascii")


def status_list_credential(session: Session, urls: BadgeUrls, now: datetime) -> dict[str, Any]:
    """Return the unsigned ``BitstringStatusListCredential``, valid from ``now``, with every revoked bit set."""
    revoked = session.scalars(
        select(CredentialStatus.status_list_index).where(CredentialStatus.revoked_at.is_not(None))
    ).all()
    highest = session.scalar(select(func.max(CredentialStatus.status_list_index)))
    list_url = urls.revocation_list()
    return {
        "@context": [VC_CONTEXT],
        "id": list_url,
        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
        "issuer": urls.issuer(),
        "validFrom": iso_timestamp(now),
        "credentialSubject": {
            "id": f"{list_url}#list",
            "type": "BitstringStatusList",
            "statusPurpose": STATUS_PURPOSE,
            "encodedList": encode_list(revoked, list_size(highest)),
            "ttl": TTL_SECONDS * 1000,
        },
    }

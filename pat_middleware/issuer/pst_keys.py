"""A Private State Token issuer's keys: VOPRF token keys and the record signing key.

A :class:`PSTKeySet` holds

* up to six P-384 **token keys** (RFC 9497 VOPRF), each with a uint32 id (the trust label a
  token carries), a creation time, a ``not_before`` from which the issuer signs with it, and
  an expiry (microseconds since the epoch, as Chromium's commitment wants them);
* one Ed25519 **record signing key** that signs redemption records, plus the public halves of
  replaced signing keys, published until the records they signed have expired.

The file is JSON with PKCS#8 PEM private keys, written with mode 0600 and refused on load when
group or others may read it::

    {"format": "pat-middleware/pst-keys", "version": 1, "commitment_id": 1,
     "token_keys": [{"id": 1, "created_us": ..., "not_before_us": ..., "expiry_us": ...,
                     "private_key": "-----BEGIN PRIVATE KEY-----..."}],
     "record_key": {"created_us": ..., "private_key": "-----BEGIN PRIVATE KEY-----..."},
     "retired_record_keys": [{"x": "<base64url Ed25519 public key>", "until_us": ...}]}

Secrets never appear in ``repr``, logs or error messages.

Rotation, within what Chrome allows (Chrome's issuer registration documents these limits):

* at most :data:`MAX_TOKEN_KEYS` (6) keys; expired keys are dropped from the commitment and
  by :func:`rotate_token_key`;
* a new token key no sooner than :data:`MIN_ROTATION_INTERVAL` (60 days) after the previous
  one. :func:`rotate_token_key` adds it with a ``not_before`` some days ahead
  (:data:`DEFAULT_ACTIVATION_DELAY`), so browsers hold the new commitment before the first
  token under the new key reaches them; the old key keeps redeeming until it expires (the
  overlap);
* :func:`rotate_record_key` replaces the signing key and keeps the old public key in the JWK
  Set for as long as a record it signed may live.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..core.codec import b64url_decode_strict, b64url_encode
from ..core.redemption_record import RecordKey, RecordKeySet
from ..errors import ConfigurationError, DecodeError
from ..tokens.oprf import SecretKey
from .pst_wire import (
    MAX_COMMITMENT_KEYS,
    UINT32_MAX,
    CommitmentKey,
    KeyCommitment,
)

FILE_FORMAT = "pat-middleware/pst-keys"
FILE_VERSION = 1
#: The setting name errors about the key file carry.
SETTING = "pst_keys"
MAX_TOKEN_KEYS = MAX_COMMITMENT_KEYS
MICROSECONDS = 1_000_000
#: Chrome: a new key no sooner than 60 days after the previous one (seconds).
MIN_ROTATION_INTERVAL = 60 * 86_400
#: How long a new token key lives unless told otherwise (three rotation intervals).
DEFAULT_KEY_LIFETIME = 180 * 86_400
#: How long after :func:`rotate_token_key` the issuer starts signing with the new key.
DEFAULT_ACTIVATION_DELAY = 7 * 86_400
MAX_KEY_FILE_SIZE = 1024 * 1024
MAX_RETIRED_RECORD_KEYS = 16
_PEM_NONE = serialization.NoEncryption()


def now_us(now: float | None = None) -> int:
    """``now`` (seconds, default the clock) in whole microseconds."""
    return int((time.time() if now is None else now) * MICROSECONDS)


def _pem(key: ec.EllipticCurvePrivateKey | Ed25519PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, _PEM_NONE
    ).decode("ascii")


@dataclass(frozen=True, slots=True, repr=False)
class PSTTokenKey:
    """One VOPRF token key with its id and times (microseconds since the epoch)."""

    key_id: int
    secret: SecretKey
    created_us: int
    not_before_us: int
    expiry_us: int

    def __post_init__(self) -> None:
        if type(self.key_id) is not int or not 0 <= self.key_id <= UINT32_MAX:
            raise ConfigurationError(SETTING, "a token key id is a uint32")
        if not 0 <= self.created_us <= self.not_before_us < self.expiry_us:
            raise ConfigurationError(
                SETTING, f"token key {self.key_id}: needs created <= not_before < expiry"
            )

    def __repr__(self) -> str:
        return (
            f"PSTTokenKey(id={self.key_id}, public_key={self.secret.public_key.compressed.hex()}, "
            f"expiry_us={self.expiry_us})"
        )

    def expired(self, at_us: int) -> bool:
        return self.expiry_us <= at_us

    def signs_at(self, at_us: int) -> bool:
        return self.not_before_us <= at_us < self.expiry_us

    def commitment_key(self) -> CommitmentKey:
        return CommitmentKey(self.key_id, self.secret.public_key, self.expiry_us)


@dataclass(frozen=True, slots=True, repr=False)
class RetiredRecordKey:
    """The public half of a replaced record signing key, published until ``until_us``."""

    public_key: Ed25519PublicKey
    until_us: int

    def __repr__(self) -> str:
        return f"RetiredRecordKey(until_us={self.until_us})"


@dataclass(frozen=True, slots=True, repr=False)
class PSTKeySet:
    """Everything a PST issuer signs with. Immutable: the rotation functions return new sets."""

    token_keys: tuple[PSTTokenKey, ...]
    record_key: Ed25519PrivateKey
    record_key_created_us: int
    retired_record_keys: tuple[RetiredRecordKey, ...] = ()
    commitment_id: int = 1
    _record_kid: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        if not self.token_keys:
            raise ConfigurationError(SETTING, "at least one token key is needed")
        if len(self.token_keys) > MAX_TOKEN_KEYS:
            raise ConfigurationError(
                SETTING, f"Chrome accepts at most {MAX_TOKEN_KEYS} keys; drop expired ones"
            )
        ids = [key.key_id for key in self.token_keys]
        if len(set(ids)) != len(ids):
            raise ConfigurationError(SETTING, "two token keys share an id")
        if type(self.commitment_id) is not int or not 0 < self.commitment_id <= 2**53:
            raise ConfigurationError(SETTING, "commitment_id is an integer above 0")
        if not isinstance(self.record_key, Ed25519PrivateKey):
            raise ConfigurationError(SETTING, "the record key is an Ed25519 key")
        if len(self.retired_record_keys) > MAX_RETIRED_RECORD_KEYS:
            raise ConfigurationError(SETTING, "too many retired record keys")
        object.__setattr__(
            self, "_record_kid", RecordKey.from_public_key(self.record_key.public_key()).kid
        )

    def __repr__(self) -> str:
        ids = ",".join(str(key.key_id) for key in self.token_keys)
        return f"PSTKeySet(token_keys=[{ids}], record_kid={self._record_kid!r})"

    # ---------------------------------------------------------------- lookups

    def key(self, key_id: int) -> PSTTokenKey | None:
        for key in self.token_keys:
            if key.key_id == key_id:
                return key
        return None

    def unexpired(self, at_us: int) -> tuple[PSTTokenKey, ...]:
        return tuple(key for key in self.token_keys if not key.expired(at_us))

    def issuing_key(self, at_us: int) -> PSTTokenKey | None:
        """The key issuance uses by default: the newest one whose not_before has passed."""
        usable = [key for key in self.token_keys if key.signs_at(at_us)]
        return max(usable, key=lambda k: (k.not_before_us, k.key_id), default=None)

    @property
    def record_kid(self) -> str:
        return self._record_kid

    def commitment(self, at_us: int, batch_size: int) -> KeyCommitment:
        """The key commitment at ``at_us``: every unexpired key (keys not signing yet are
        published ahead), expired keys left out."""
        keys = tuple(key.commitment_key() for key in self.unexpired(at_us))
        try:
            return KeyCommitment(self.commitment_id, batch_size, keys)
        except DecodeError as e:
            raise ConfigurationError("batch_size", str(e)) from None

    def record_key_set(self, at_us: int) -> RecordKeySet:
        """The JWK Set: the current signing key and retired keys still within their time."""
        keys = [RecordKey(self._record_kid, self.record_key.public_key())]
        keys += [
            RecordKey.from_public_key(old.public_key)
            for old in self.retired_record_keys
            if old.until_us > at_us
        ]
        return RecordKeySet(tuple(keys))

    # ----------------------------------------------------------------- storage

    def export_private(self) -> dict[str, Any]:
        """The key file's content, **private keys included**: write it only to a 0600 file."""
        return {
            "format": FILE_FORMAT,
            "version": FILE_VERSION,
            "commitment_id": self.commitment_id,
            "token_keys": [
                {
                    "id": key.key_id,
                    "created_us": key.created_us,
                    "not_before_us": key.not_before_us,
                    "expiry_us": key.expiry_us,
                    "private_key": _pem(key.secret.private_key),
                }
                for key in self.token_keys
            ],
            "record_key": {
                "created_us": self.record_key_created_us,
                "private_key": _pem(self.record_key),
            },
            "retired_record_keys": [
                {
                    "x": b64url_encode(old.public_key.public_bytes_raw(), padded=False),
                    "until_us": old.until_us,
                }
                for old in self.retired_record_keys
            ],
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the key file atomically with mode 0600 (a temporary file, then a rename)."""
        target = Path(path)
        data = json.dumps(self.export_private(), indent=2).encode("ascii") + b"\n"
        fd, tmp = tempfile.mkstemp(prefix=".pst-keys-", dir=target.parent or ".")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PSTKeySet:
        """Read a key file; :class:`ConfigurationError` (naming ``pst_keys``) for a file that
        others may read, is too large, or does not follow the format."""
        target = Path(path)
        try:
            info = target.stat()
            if stat.S_IMODE(info.st_mode) & 0o077:
                raise ConfigurationError(
                    SETTING, f"{target} is readable by others; chmod 600 {target}"
                )
            if info.st_size > MAX_KEY_FILE_SIZE:
                raise ConfigurationError(SETTING, f"{target} is larger than 1 MiB")
            data = target.read_bytes()
        except OSError as e:
            raise ConfigurationError(SETTING, f"{target}: {e.strerror}") from None
        return cls.from_bytes(data)

    @classmethod
    def from_bytes(cls, data: bytes | str) -> PSTKeySet:
        if len(data) > MAX_KEY_FILE_SIZE:
            raise ConfigurationError(SETTING, "the key file is larger than 1 MiB")
        try:
            obj = json.loads(data)
        except (ValueError, RecursionError):
            raise ConfigurationError(SETTING, "the key file is not JSON") from None
        return cls.from_json(obj)

    @classmethod
    def from_json(cls, obj: object) -> PSTKeySet:
        if not isinstance(obj, dict) or obj.get("format") != FILE_FORMAT:
            raise ConfigurationError(SETTING, f"not a {FILE_FORMAT} file")
        if obj.get("version") != FILE_VERSION or type(obj.get("version")) is not int:
            raise ConfigurationError(SETTING, f"unsupported key file version (want {FILE_VERSION})")
        token_entries = _list(obj, "token_keys", MAX_TOKEN_KEYS)
        retired_entries = _list(obj, "retired_record_keys", MAX_RETIRED_RECORD_KEYS)
        record = obj.get("record_key")
        if not isinstance(record, dict):
            raise ConfigurationError(SETTING, "record_key is an object")
        record_key = _load_pem(record.get("private_key"), "record_key")
        if not isinstance(record_key, Ed25519PrivateKey):
            raise ConfigurationError(SETTING, "record_key is not an Ed25519 key")
        return cls(
            token_keys=tuple(_token_key(entry, i) for i, entry in enumerate(token_entries)),
            record_key=record_key,
            record_key_created_us=_uint(record, "created_us", "record_key"),
            retired_record_keys=tuple(_retired(entry) for entry in retired_entries),
            commitment_id=_uint(obj, "commitment_id", "file", "an integer above 0"),
        )


def _list(obj: dict[str, Any], name: str, limit: int) -> list[Any]:
    value = obj.get(name, [])
    if not isinstance(value, list) or len(value) > limit:
        raise ConfigurationError(SETTING, f"{name} is a list of at most {limit} entries")
    return value


def _uint(
    entry: dict[str, Any], name: str, where: str, what: str = "a whole number of microseconds"
) -> int:
    value = entry.get(name)
    if type(value) is not int or not 0 <= value < 2**63:
        raise ConfigurationError(SETTING, f"{where}.{name} is {what}")
    return value


def _load_pem(text: object, where: str) -> Any:
    if not isinstance(text, str) or not text.isascii():
        raise ConfigurationError(SETTING, f"{where}.private_key is a PEM string")
    try:
        return serialization.load_pem_private_key(text.encode("ascii"), password=None)
    except (ValueError, TypeError):
        # cryptography's messages never contain key material, but say nothing of it anyway.
        raise ConfigurationError(SETTING, f"{where}.private_key is not a PKCS#8 PEM key") from None


def _token_key(entry: object, index: int) -> PSTTokenKey:
    where = f"token_keys[{index}]"
    if not isinstance(entry, dict):
        raise ConfigurationError(SETTING, f"{where} is an object")
    key_id = entry.get("id")
    if type(key_id) is not int or not 0 <= key_id <= UINT32_MAX:
        raise ConfigurationError(SETTING, f"{where}.id is a uint32")
    private = _load_pem(entry.get("private_key"), where)
    if not isinstance(private, ec.EllipticCurvePrivateKey) or not isinstance(
        private.curve, ec.SECP384R1
    ):
        raise ConfigurationError(SETTING, f"{where}.private_key is not a P-384 key")
    return PSTTokenKey(
        key_id,
        SecretKey.from_private_key(private),
        _uint(entry, "created_us", where),
        _uint(entry, "not_before_us", where),
        _uint(entry, "expiry_us", where),
    )


def _retired(entry: object) -> RetiredRecordKey:
    if not isinstance(entry, dict) or not isinstance(entry.get("x"), str):
        raise ConfigurationError(SETTING, "a retired record key has x")
    try:
        raw = b64url_decode_strict(entry["x"].encode("ascii"))
        public = Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, UnicodeEncodeError):
        raise ConfigurationError(
            SETTING, "a retired record key's x is not an Ed25519 key"
        ) from None
    return RetiredRecordKey(public, _uint(entry, "until_us", "retired_record_keys"))


# ------------------------------------------------------------------------------ making keys


def _new_token_key(key_id: int, created_us: int, not_before_us: int, lifetime: int) -> PSTTokenKey:
    if lifetime <= 0:
        raise ConfigurationError("lifetime", "must be positive")
    return PSTTokenKey(
        key_id,
        SecretKey.generate(),
        created_us,
        not_before_us,
        not_before_us + lifetime * MICROSECONDS,
    )


def new_key_set(
    *, now: float | None = None, lifetime: int = DEFAULT_KEY_LIFETIME, key_id: int = 1
) -> PSTKeySet:
    """A fresh key set: one token key (id ``key_id``, signing from ``now``, living
    ``lifetime`` seconds) and a freshly generated record signing key (never a reused one)."""
    at = now_us(now)
    return PSTKeySet(
        token_keys=(_new_token_key(key_id, at, at, lifetime),),
        record_key=Ed25519PrivateKey.generate(),
        record_key_created_us=at,
    )


def drop_expired(keys: PSTKeySet, *, now: float | None = None) -> PSTKeySet:
    """The set without expired token keys and past retired record keys (at least one token key
    must remain: :class:`ConfigurationError` otherwise)."""
    at = now_us(now)
    live = keys.unexpired(at)
    if not live:
        raise ConfigurationError(SETTING, "every token key has expired; make a new key set")
    retired = tuple(old for old in keys.retired_record_keys if old.until_us > at)
    return replace(keys, token_keys=live, retired_record_keys=retired)


def rotate_token_key(
    keys: PSTKeySet,
    *,
    now: float | None = None,
    lifetime: int = DEFAULT_KEY_LIFETIME,
    activate_after: int = DEFAULT_ACTIVATION_DELAY,
    min_interval: int = MIN_ROTATION_INTERVAL,
) -> PSTKeySet:
    """Add a token key (the next id), signing from ``now + activate_after``; drop expired keys;
    bump the commitment id. Refused (:class:`ConfigurationError`) sooner than ``min_interval``
    (Chrome: 60 days) after the newest key, or when six live keys are already there."""
    at = now_us(now)
    current = drop_expired(keys, now=now)
    newest = max(key.created_us for key in current.token_keys)
    if at - newest < min_interval * MICROSECONDS:
        raise ConfigurationError(
            SETTING, f"the newest key is younger than {min_interval // 86_400} days"
        )
    if len(current.token_keys) >= MAX_TOKEN_KEYS:
        raise ConfigurationError(SETTING, f"{MAX_TOKEN_KEYS} live keys already")
    next_id = max(key.key_id for key in keys.token_keys) + 1
    if next_id > UINT32_MAX:
        raise ConfigurationError(SETTING, "no key id left")
    added = _new_token_key(next_id, at, at + activate_after * MICROSECONDS, lifetime)
    return replace(
        current,
        token_keys=(*current.token_keys, added),
        commitment_id=current.commitment_id + 1,
    )


def rotate_record_key(keys: PSTKeySet, *, now: float | None = None, keep_for: int) -> PSTKeySet:
    """Replace the record signing key with a new one; publish the old public key for
    ``keep_for`` more seconds (at least the record lifetime plus the consumers' leeway)."""
    at = now_us(now)
    retired = tuple(old for old in keys.retired_record_keys if old.until_us > at)
    old = RetiredRecordKey(keys.record_key.public_key(), at + keep_for * MICROSECONDS)
    return replace(
        keys,
        record_key=Ed25519PrivateKey.generate(),
        record_key_created_us=at,
        retired_record_keys=(*retired, old)[-MAX_RETIRED_RECORD_KEYS:],
    )


__all__ = [
    "DEFAULT_ACTIVATION_DELAY",
    "DEFAULT_KEY_LIFETIME",
    "FILE_FORMAT",
    "MAX_TOKEN_KEYS",
    "MIN_ROTATION_INTERVAL",
    "PSTKeySet",
    "PSTTokenKey",
    "RetiredRecordKey",
    "drop_expired",
    "new_key_set",
    "now_us",
    "rotate_record_key",
    "rotate_token_key",
]

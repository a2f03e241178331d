"""Privacy Pass issuance (RFC 9578 §4), without I/O: token type 2, Blind RSA (§6), here, and
an :class:`Issuer` serving type 1, VOPRF (§5, wire messages in :mod:`.voprf`), beside it.

Issuer side: :class:`Issuer` holds private keys (RSA for type 2, EC P-384 for type 1),
publishes the issuer directory and turns TokenRequest bytes into TokenResponse bytes,
dispatching on the request's token type. Client side: :func:`begin_issuance` blinds a type-2
token input into a :class:`TokenRequest`, and :func:`finalize_issuance` unblinds the issuer's
:class:`TokenResponse` into a :class:`~pat_middleware.core.wire.Token`, checking the
signature; :func:`start_issuance` does either type by the key it is given. HTTP lives in
:mod:`.server` and :mod:`.client`.
"""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ..core.directory import (
    DIRECTORY_PATH,
    ISSUER_DIRECTORY_MEDIA_TYPE,
    LEGACY_DIRECTORY_PATH,
    MAX_DIRECTORY_SIZE,
    DirectoryKey,
    IssuerDirectory,
    is_uri_text,
    parse_directory,
)
from ..core.keys import PublishedKey
from ..core.wire import (
    NONCE_LENGTH,
    TOKEN_TYPE_BLIND_RSA,
    Token,
    TokenChallenge,
)
from ..errors import ConfigurationError, DecodeError, IssuanceError
from ..tokens import rsabssa as blindrsa
from ..tokens.blind_rsa import PSS_SALT_LENGTH, IssuerKey, encode_pss_spki
from ..tokens.rsabssa import BlindRSAPrivateKey, BlindRSAPublicKey, RandomBytes
from ..tokens.voprf import VOPRFPublicKey, VOPRFTokenKey
from .voprf import VOPRFIssuanceState, VOPRFIssuingKey, begin_voprf_issuance

# Media types, not secrets (ruff reads "TOKEN" as a password hint).
TOKEN_REQUEST_MEDIA_TYPE = "application/private-token-request"  # noqa: S105
TOKEN_RESPONSE_MEDIA_TYPE = "application/private-token-response"  # noqa: S105
#: The ``issuer-request-uri`` an :class:`Issuer` publishes unless told otherwise.
DEFAULT_REQUEST_PATH = "/token-request"

#: token_type (u16) | truncated_token_key_id (u8), in front of blinded_msg.
TOKEN_REQUEST_HEADER_LENGTH = 3
#: Nk for the modulus sizes type 2 allows: 2048 bits (RFC 9578) and 4096 (early drafts).
BLIND_RSA_NK_2048 = 256
BLIND_RSA_NK_4096 = 512
_ALLOWED_NK = frozenset({BLIND_RSA_NK_2048, BLIND_RSA_NK_4096})


_U16 = struct.Struct("!H")
_REQUEST_HEADER = struct.Struct("!HB")


def _truncate_key_id(token_key_id: bytes) -> int:
    """truncated_token_key_id: the least significant (last) byte of token_key_id."""
    return token_key_id[-1]


# --------------------------------------------------------------------------- wire messages


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """A type-2 TokenRequest (RFC 9578 §6.1): type | truncated_token_key_id | blinded_msg."""

    truncated_token_key_id: int
    blinded_msg: bytes = field(repr=False)
    token_type: int = TOKEN_TYPE_BLIND_RSA

    def __post_init__(self) -> None:
        if self.token_type != TOKEN_TYPE_BLIND_RSA:
            raise DecodeError(f"TokenRequest token_type must be {TOKEN_TYPE_BLIND_RSA}")
        if not 0 <= self.truncated_token_key_id <= 0xFF:
            raise DecodeError("truncated_token_key_id must fit in 8 bits")
        if not isinstance(self.blinded_msg, bytes) or len(self.blinded_msg) not in _ALLOWED_NK:
            raise DecodeError("blinded_msg must be 256 or 512 bytes")

    def to_bytes(self) -> bytes:
        return _REQUEST_HEADER.pack(self.token_type, self.truncated_token_key_id) + (
            self.blinded_msg
        )

    @classmethod
    def from_bytes(cls, data: bytes, *, nk: int = BLIND_RSA_NK_2048) -> TokenRequest:
        """Parse a request whose blinded_msg is exactly ``nk`` bytes; nothing else passes."""
        data = bytes(data)
        if len(data) != TOKEN_REQUEST_HEADER_LENGTH + nk:
            raise DecodeError(
                f"TokenRequest is {len(data)} bytes, expected {TOKEN_REQUEST_HEADER_LENGTH + nk}"
            )
        token_type, truncated = _REQUEST_HEADER.unpack_from(data)
        return cls(truncated, data[TOKEN_REQUEST_HEADER_LENGTH:], token_type)


@dataclass(frozen=True, slots=True)
class TokenResponse:
    """A type-2 TokenResponse (RFC 9578 §6.2): blind_sig, Nk bytes."""

    blind_sig: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.blind_sig, bytes) or len(self.blind_sig) not in _ALLOWED_NK:
            raise DecodeError("blind_sig must be 256 or 512 bytes")

    def to_bytes(self) -> bytes:
        return self.blind_sig

    @classmethod
    def from_bytes(cls, data: bytes, *, nk: int = BLIND_RSA_NK_2048) -> TokenResponse:
        """Parse a response of exactly ``nk`` bytes."""
        data = bytes(data)
        if len(data) != nk:
            raise DecodeError(f"TokenResponse is {len(data)} bytes, expected {nk}")
        return cls(data)


# --------------------------------------------------------------------------------- issuer


@dataclass(frozen=True, slots=True, repr=False)
class SigningKey:
    """An issuer private key and the time from which clients may use it: RSA for token type
    2, EC P-384 for token type 1."""

    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    not_before: int | None = None

    def __repr__(self) -> str:
        kind = (
            f"bits={self.private_key.key_size}"
            if isinstance(self.private_key, rsa.RSAPrivateKey)
            else "P-384"
        )
        return f"SigningKey({kind}, not_before={self.not_before})"


@dataclass(frozen=True, slots=True, repr=False)
class _BlindRSAEntry:
    signing: BlindRSAPrivateKey
    public: IssuerKey
    not_before: int | None
    rng: RandomBytes

    @property
    def request_length(self) -> int:
        return TOKEN_REQUEST_HEADER_LENGTH + self.public.authenticator_length

    def issue(self, request: bytes) -> bytes:
        blinded_msg = request[TOKEN_REQUEST_HEADER_LENGTH:]
        if len(blinded_msg) != self.public.authenticator_length:
            raise IssuanceError(
                f"blinded_msg is {len(blinded_msg)} bytes, not the key's Nk", status=422
            )
        if not 0 < int.from_bytes(blinded_msg, "big") < self.signing.public.n:
            raise IssuanceError("blinded_msg is out of range for the key", status=422)
        blind_sig = blindrsa.blind_sign(self.signing, blinded_msg, rng=self.rng)
        return TokenResponse(blind_sig).to_bytes()


#: One issuer key of any type that :class:`Issuer` serves.
_IssuerEntry = _BlindRSAEntry | VOPRFIssuingKey


class Issuer:
    """A sans-IO issuer: publishes a directory and answers token requests.

    ``keys`` are private keys (or :class:`SigningKey` to set a not-before), in directory
    (preference) order: RSA keys issue token type 2 (2048-bit, or 4096-bit with
    ``allow_4096``), EC P-384 keys issue token type 1. Keys of one type whose truncated key
    ids (last byte of token_key_id) collide are refused: a token request names its key only
    by its type and that byte.

    Python big-int arithmetic is not constant-time (type 2; type 1 keeps its secrets in
    OpenSSL): this issuer is for tests, demos and small deployments, not a hardened
    production issuer.
    """

    __slots__ = (
        "_by_truncated_id",
        "_directory",
        "_directory_bytes",
        "_entries",
        "_name",
        "_types",
    )

    def __init__(
        self,
        name: str,
        *keys: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | SigningKey,
        request_uri: str = DEFAULT_REQUEST_PATH,
        allow_4096: bool = False,
        rng: RandomBytes = secrets.token_bytes,
    ) -> None:
        try:
            TokenChallenge(TOKEN_TYPE_BLIND_RSA, name)
        except DecodeError as e:
            raise ConfigurationError("issuer.name", str(e)) from e
        if not isinstance(request_uri, str) or not is_uri_text(request_uri):
            raise ConfigurationError("issuer.request_uri", "must be a non-empty URI string")
        parts = urlsplit(request_uri)
        if parts.scheme not in ("", "http", "https") or not parts.path.startswith("/"):
            raise ConfigurationError(
                "issuer.request_uri", "must be an absolute path or an http(s) URL with a path"
            )
        if parts.path in (DIRECTORY_PATH, LEGACY_DIRECTORY_PATH):
            raise ConfigurationError("issuer.request_uri", "must not be a directory path")
        if not keys:
            raise ConfigurationError("issuer.keys", "at least one private key is needed")
        entries: list[_IssuerEntry] = []
        for index, item in enumerate(keys):
            signing = item if isinstance(item, SigningKey) else SigningKey(item)
            entries.append(_make_entry(signing, index, allow_4096, rng))
        ids = [entry.public.token_key_id for entry in entries]
        if len(set(ids)) != len(ids):
            raise ConfigurationError("issuer.keys", "the same key is listed twice")
        by_truncated: dict[tuple[int, int], tuple[_IssuerEntry, ...]] = {}
        for entry in entries:
            named = (entry.public.token_type, _truncate_key_id(entry.public.token_key_id))
            if named in by_truncated:
                # RFC 9578 §5.5, §6.5: the issuer could not tell which key a request means.
                raise ConfigurationError(
                    "issuer.keys",
                    f"two type-{named[0]} keys share the truncated key id 0x{named[1]:02x}; "
                    "generate another key",
                )
            by_truncated[named] = (entry,)
        self._name = name
        self._entries = tuple(entries)
        self._types = frozenset(entry.public.token_type for entry in entries)
        self._by_truncated_id = by_truncated
        self._directory = IssuerDirectory(
            request_uri,
            tuple(
                DirectoryKey(entry.public.token_type, entry.public.published, entry.not_before)
                for entry in entries
            ),
        )
        self._directory_bytes = self._directory.to_bytes()

    def __repr__(self) -> str:
        return f"Issuer(name={self._name!r}, keys={len(self._entries)})"

    @property
    def name(self) -> str:
        """The issuer_name that challenges for this issuer carry."""
        return self._name

    @property
    def request_uri(self) -> str:
        return self._directory.issuer_request_uri

    @property
    def published_keys(self) -> tuple[PublishedKey, ...]:
        """Every key as published, any token type, in directory (preference) order."""
        return tuple(entry.public for entry in self._entries)

    @property
    def token_types(self) -> frozenset[int]:
        """The token types this issuer issues."""
        return self._types

    @property
    def public_keys(self) -> tuple[IssuerKey, ...]:
        """The type-2 public keys, in directory (preference) order."""
        return tuple(e.public for e in self._entries if isinstance(e, _BlindRSAEntry))

    @property
    def preferred_key(self) -> IssuerKey:
        """The first type-2 key."""
        keys = self.public_keys
        if not keys:
            raise ConfigurationError("issuer.keys", "this issuer has no type-2 (RSA) key")
        return keys[0]

    def preferred_key_at(self, now: float) -> IssuerKey:
        """The type-2 key clients pick at ``now``: the first whose not-before has passed
        (RFC 9578 §4), else the first."""
        key = self.preferred(TOKEN_TYPE_BLIND_RSA, now=now)
        if not isinstance(key, IssuerKey):  # pragma: no cover - type 2 keys are IssuerKeys
            raise ConfigurationError("issuer.keys", "this issuer has no type-2 (RSA) key")
        return key

    def preferred(self, token_type: int | None = None, *, now: float | None = None) -> PublishedKey:
        """The key clients pick (of ``token_type``, when given): at ``now``, the first
        whose not-before has passed, else the first; without ``now``, the first."""
        entries = [
            e for e in self._entries if token_type is None or e.public.token_type == token_type
        ]
        if not entries:
            raise ConfigurationError("issuer.keys", f"this issuer has no type-{token_type} key")
        for entry in entries:
            if now is None or entry.not_before is None or entry.not_before <= now:
                return entry.public
        return entries[0].public

    @property
    def max_request_length(self) -> int:
        """The longest valid TokenRequest among the keys."""
        return max(entry.request_length for entry in self._entries)

    def directory(self) -> IssuerDirectory:
        return self._directory

    def directory_bytes(self) -> bytes:
        """The directory as served: compact JSON, computed once."""
        return self._directory_bytes

    def issue(self, request: bytes) -> bytes:
        """Answer TokenRequest bytes with TokenResponse bytes (RFC 9578 §5.2, §6.2).

        Raises :class:`IssuanceError`: status 400 when the request is too short to read,
        422 for an unsupported type, an unknown key or a blinded message of the wrong size,
        out of range or not a group element (the RFC's answer for each).
        """
        data = bytes(request)
        if len(data) < TOKEN_REQUEST_HEADER_LENGTH:
            raise IssuanceError("TokenRequest is truncated", status=400)
        token_type, truncated = _REQUEST_HEADER.unpack_from(data)
        if token_type not in self._types:
            raise IssuanceError(f"unsupported token type {token_type}", status=422)
        candidates = self._by_truncated_id.get((token_type, truncated), ())
        if not candidates:
            raise IssuanceError("unknown truncated_token_key_id", status=422)
        refused: IssuanceError | None = None
        for entry in candidates:  # one, unless someone forced a collision in
            try:
                return entry.issue(data)
            except IssuanceError as e:
                refused = refused or e
        raise refused or IssuanceError("no key answers this request", status=422)


def _make_entry(
    signing: SigningKey, index: int, allow_4096: bool, rng: RandomBytes
) -> _IssuerEntry:
    setting = f"issuer.keys[{index}]"
    if signing.not_before is not None and (
        type(signing.not_before) is not int or signing.not_before < 0
    ):
        raise ConfigurationError(setting, "not_before must be a non-negative Unix time")
    private_key = signing.private_key
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        try:
            return VOPRFIssuingKey(VOPRFTokenKey.from_private_key(private_key), signing.not_before)
        except DecodeError as e:
            raise ConfigurationError(setting, str(e)) from e
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise ConfigurationError(
            setting, "must be an RSA (token type 2) or EC P-384 (token type 1) private key"
        )
    try:
        public = IssuerKey.from_spki(
            encode_pss_spki(private_key.public_key()), allow_4096=allow_4096
        )
    except DecodeError as e:
        raise ConfigurationError(setting, str(e)) from e
    return _BlindRSAEntry(
        BlindRSAPrivateKey.from_cryptography(private_key), public, signing.not_before, rng
    )


# --------------------------------------------------------------------------------- client


@dataclass(frozen=True, slots=True, repr=False)
class IssuanceState:
    """What a client keeps between :func:`begin_issuance` and :func:`finalize_issuance`."""

    key: IssuerKey
    nonce: bytes
    challenge_digest: bytes
    inv: bytes
    blind_key: BlindRSAPublicKey

    def __repr__(self) -> str:
        return f"IssuanceState(key={self.key!r})"

    @property
    def token_input(self) -> bytes:
        """The 98 bytes being signed: type | nonce | challenge_digest | token_key_id."""
        return _token_input(self.nonce, self.challenge_digest, self.key.token_key_id)

    @property
    def response_length(self) -> int:
        """The size of the TokenResponse to expect: Nk."""
        return self.key.authenticator_length

    def finalize(self, response: bytes) -> Token:
        """:func:`finalize_issuance` with this state."""
        return finalize_issuance(self, response)


def _token_input(nonce: bytes, challenge_digest: bytes, token_key_id: bytes) -> bytes:
    return _U16.pack(TOKEN_TYPE_BLIND_RSA) + nonce + challenge_digest + token_key_id


def begin_issuance(
    challenge: TokenChallenge,
    key: IssuerKey,
    *,
    rng: RandomBytes = secrets.token_bytes,
    nonce: bytes | None = None,
    salt: bytes | None = None,
    r: bytes | int | None = None,
    inv: bytes | int | None = None,
) -> tuple[TokenRequest, IssuanceState]:
    """Blind a fresh token input for ``challenge`` under ``key`` (RFC 9578 §6.1).

    ``nonce``, ``salt`` and the blind (``r``, or its inverse ``inv``) are drawn from ``rng``
    unless given; giving them is for test vectors. Raises :class:`IssuanceError` when the
    challenge or key is not token type 2.
    """
    if challenge.token_type != TOKEN_TYPE_BLIND_RSA or key.token_type != TOKEN_TYPE_BLIND_RSA:
        raise IssuanceError("only token type 2 (Blind RSA) can be issued here", status=400)
    if nonce is None:
        nonce = rng(NONCE_LENGTH)
    if len(nonce) != NONCE_LENGTH:
        raise ValueError(f"nonce must be {NONCE_LENGTH} bytes")
    blind_key = BlindRSAPublicKey.from_cryptography(key.public_key)
    token_input = _token_input(nonce, challenge.digest, key.token_key_id)
    blinded_msg, inv_bytes = blindrsa.blind(
        blind_key, token_input, salt_length=PSS_SALT_LENGTH, salt=salt, r=r, inv=inv, rng=rng
    )
    request = TokenRequest(_truncate_key_id(key.token_key_id), blinded_msg)
    state = IssuanceState(key, nonce, challenge.digest, inv_bytes, blind_key)
    return request, state


def finalize_issuance(state: IssuanceState, response: bytes) -> Token:
    """Unblind TokenResponse bytes into a Token whose signature has been verified.

    Raises :class:`DecodeError` for a response of the wrong size and :class:`IssuanceError`
    when the signature does not verify.
    """
    parsed = TokenResponse.from_bytes(response, nk=state.key.authenticator_length)
    authenticator = blindrsa.finalize(
        state.blind_key,
        state.token_input,
        parsed.blind_sig,
        state.inv,
        salt_length=PSS_SALT_LENGTH,
    )
    return Token(
        token_type=TOKEN_TYPE_BLIND_RSA,
        nonce=state.nonce,
        challenge_digest=state.challenge_digest,
        token_key_id=state.key.token_key_id,
        authenticator=authenticator,
    )


#: A client's state between its TokenRequest and the issuer's answer, of either type: its
#: ``finalize(response)`` gives the verified Token.
ClientState = IssuanceState | VOPRFIssuanceState


def start_issuance(
    challenge: TokenChallenge,
    key: PublishedKey,
    *,
    rng: RandomBytes = secrets.token_bytes,
) -> tuple[bytes, ClientState]:
    """TokenRequest bytes for ``challenge`` under ``key``, of the key's token type, and the
    state whose ``finalize`` takes the issuer's answer. Raises :class:`IssuanceError` for a
    key of a type this client cannot issue, or a challenge of another type."""
    if challenge.token_type != key.token_type:
        raise IssuanceError(
            f"a type-{challenge.token_type} challenge with a type-{key.token_type} key",
            status=400,
        )
    if isinstance(key, IssuerKey):
        request, state = begin_issuance(challenge, key, rng=rng)
        return request.to_bytes(), state
    if isinstance(key, VOPRFTokenKey):
        key = key.public
    if isinstance(key, VOPRFPublicKey):
        voprf_request, voprf_state = begin_voprf_issuance(challenge, key, rng=rng)
        return voprf_request.to_bytes(), voprf_state
    raise IssuanceError(f"this client cannot issue token type {key.token_type}", status=400)


def can_issue(key: PublishedKey) -> bool:
    """True when :func:`start_issuance` runs issuance for this key's type."""
    return isinstance(key, IssuerKey | VOPRFPublicKey | VOPRFTokenKey)


def issue_token_locally(
    issuer: Issuer,
    challenge: TokenChallenge,
    key: PublishedKey | None = None,
    *,
    rng: RandomBytes = secrets.token_bytes,
) -> Token:
    """Run both sides of issuance in process; ``key`` defaults to the issuer's preferred key
    of the challenge's token type."""
    chosen = key if key is not None else issuer.preferred(challenge.token_type)
    request, state = start_issuance(challenge, chosen, rng=rng)
    return state.finalize(issuer.issue(request))


__all__ = [
    "DEFAULT_REQUEST_PATH",
    "DIRECTORY_PATH",
    "ISSUER_DIRECTORY_MEDIA_TYPE",
    "LEGACY_DIRECTORY_PATH",
    "MAX_DIRECTORY_SIZE",
    "TOKEN_REQUEST_MEDIA_TYPE",
    "TOKEN_RESPONSE_MEDIA_TYPE",
    "ClientState",
    "DirectoryKey",
    "IssuanceState",
    "Issuer",
    "IssuerDirectory",
    "SigningKey",
    "TokenRequest",
    "TokenResponse",
    "begin_issuance",
    "can_issue",
    "finalize_issuance",
    "issue_token_locally",
    "parse_directory",
    "start_issuance",
]

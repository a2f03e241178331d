from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import HealthCheck, settings

from pat_middleware import IssuerKey, Token, TokenChallenge, encode_pss_spki

from ._redis import RedisServer, shared_redis_url, valkey_server_binary
from ._store_servers import MemcachedServer, RedisClusterServers, SentinelServers

settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("fuzz", max_examples=50_000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def rsa_2048() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def other_rsa_2048() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def rsa_4096() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=4096)


@pytest.fixture(scope="session")
def issuer_key(rsa_2048: rsa.RSAPrivateKey) -> IssuerKey:
    return IssuerKey.from_spki(encode_pss_spki(rsa_2048.public_key()))


def sign_token(
    private_key: rsa.RSAPrivateKey,
    key: IssuerKey,
    challenge: TokenChallenge,
    *,
    nonce: bytes | None = None,
) -> bytes:
    """A token as a client would finalize it: an RSA-PSS signature over the 98-byte input.

    An unblinded RSABSSA signature is a plain RSASSA-PSS signature, so signing directly gives
    the same verification inputs without running issuance.
    """
    unsigned = Token(
        token_type=key.token_type,
        nonce=nonce if nonce is not None else secrets.token_bytes(32),
        challenge_digest=challenge.digest,
        token_key_id=key.token_key_id,
        authenticator=b"\x00",
    )
    authenticator = private_key.sign(
        unsigned.authenticator_input,
        padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48),
        hashes.SHA384(),
    )
    return unsigned.authenticator_input + authenticator


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    """An httpx client on the server a test module starts in its own ``base_url`` fixture."""
    with httpx.Client(base_url=base_url, timeout=10.0) as c:
        yield c


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real Redis shared by the session: PAT_TEST_REDIS_URL, else a spawned redis-server.
    Tests isolate themselves with a key prefix of their own; none stops this server."""
    url = shared_redis_url()
    if url is not None:
        yield url
        return
    with RedisServer() as server:
        yield server.url


@pytest.fixture(scope="session")
def valkey_url() -> Iterator[str]:
    """A real Valkey shared by the session, spawned from valkey-server; as ``redis_url``."""
    with RedisServer(binary=valkey_server_binary()) as server:
        yield server.url


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterServers]:
    """A three-node Redis Cluster shared by the session; none stops it."""
    with RedisClusterServers() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def valkey_cluster() -> Iterator[RedisClusterServers]:
    """A three-node Valkey Cluster shared by the session; none stops it."""
    with RedisClusterServers(binary=valkey_server_binary()) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis_sentinel() -> Iterator[SentinelServers]:
    """A master, a replica and a Sentinel shared by the session; none fails it over."""
    with SentinelServers() as servers:
        yield servers


@pytest.fixture(scope="session")
def valkey_sentinel() -> Iterator[SentinelServers]:
    """A Valkey master, its replica and a Valkey Sentinel shared by the session."""
    with SentinelServers(binary=valkey_server_binary()) as servers:
        yield servers


@pytest.fixture(scope="session")
def memcached() -> Iterator[MemcachedServer]:
    """A memcached shared by the session (tests use keys of their own)."""
    with MemcachedServer() as server:
        yield server


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server for this test alone: it may stop, restart or pause it."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def own_valkey() -> Iterator[RedisServer]:
    """A valkey-server for this test alone: it may stop, restart or pause it."""
    with RedisServer(binary=valkey_server_binary()) as server:
        yield server

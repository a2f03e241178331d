"""The test issuer's key schedule (sans-IO), and its directory over HTTP as keys rotate."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from pat_middleware.errors import ConfigurationError
from pat_middleware.issuer import DIRECTORY_PATH, parse_directory
from pat_middleware.issuer.rotation import RotatingIssuer
from pat_middleware.issuer.server import create_issuer_app
from pat_middleware.tokens.blind_rsa import IssuerKey, encode_pss_spki
from tests._servers import serve_asgi

from ._origin import FakeClock

T0 = 1_700_000_000
NAME = "issuer.example"


@pytest.fixture(scope="module")
def pool() -> list[rsa.RSAPrivateKey]:
    """Six keys with distinct truncated key ids: the issuer skips a colliding one, which
    would shift every later index (about one random pool in twenty collides)."""
    keys: dict[int, rsa.RSAPrivateKey] = {}
    while len(keys) < 6:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        keys.setdefault(key_id(key)[-1], key)
    return list(keys.values())


def factory(keys: list[rsa.RSAPrivateKey]) -> Callable[[], rsa.RSAPrivateKey]:
    remaining = iter(keys)
    return lambda: next(remaining)


def key_id(private: rsa.RSAPrivateKey) -> bytes:
    return IssuerKey.from_spki(encode_pss_spki(private.public_key())).token_key_id


def test_schedule_with_the_default_overlap(pool: list[rsa.RSAPrivateKey]) -> None:
    issuer = RotatingIssuer(NAME, period=10, start=T0, clock=lambda: T0, key_factory=factory(pool))
    assert issuer.published(T0) == (1, 0)  # the next key is published a period early
    assert issuer.published(T0 + 9.9) == (1, 0)
    assert issuer.published(T0 + 10) == (2, 1, 0)  # key 0 stays one period after its turn
    assert issuer.published(T0 + 20) == (3, 2, 1)
    assert [issuer.next_change(t) for t in (T0, T0 + 9.9, T0 + 10)] == [
        T0 + 10,
        T0 + 10,
        T0 + 20,
    ]


def test_schedule_with_a_short_overlap(pool: list[rsa.RSAPrivateKey]) -> None:
    issuer = RotatingIssuer(
        NAME, period=10, overlap=3, start=T0, clock=lambda: T0, key_factory=factory(pool)
    )
    assert issuer.published(T0 + 10) == (2, 1, 0)
    assert issuer.next_change(T0 + 10) == T0 + 13  # key 0 leaves 3 s after key 1 took over
    assert issuer.published(T0 + 13) == (2, 1)
    assert issuer.next_change(T0 + 13) == T0 + 20


def test_directory_order_and_preferred_key(pool: list[rsa.RSAPrivateKey]) -> None:
    clock = FakeClock(T0)
    issuer = RotatingIssuer(NAME, period=10, start=T0, clock=clock, key_factory=factory(pool))
    keys = [key_id(k) for k in pool]
    listed = issuer.issuer_at(T0 + 10).directory().token_keys
    assert [k.token_key_id for k in listed] == [keys[2], keys[1], keys[0]]
    assert [k.not_before for k in listed] == [T0 + 20, T0 + 10, T0]
    assert issuer.preferred_key(T0 + 9).token_key_id == keys[0]
    assert issuer.preferred_key(T0 + 10).token_key_id == keys[1]
    clock.now = T0 + 10
    assert issuer.current() is issuer.issuer_at(T0 + 15)  # rebuilt only when keys change


def test_unpublished_keys_are_dropped_and_old_ones_stop_signing(
    pool: list[rsa.RSAPrivateKey],
) -> None:
    issuer = RotatingIssuer(NAME, period=10, start=T0, clock=lambda: T0, key_factory=factory(pool))
    later = issuer.issuer_at(T0 + 30)
    assert {k.token_key_id for k in later.public_keys} == {key_id(k) for k in pool[2:5]}
    assert len(issuer._keys) == 3


def test_colliding_truncated_key_ids_are_regenerated(pool: list[rsa.RSAPrivateKey]) -> None:
    # The factory offers key 0 again for key 1: same truncated id, so it is skipped.
    offered = [pool[0], pool[0], pool[1]]
    issuer = RotatingIssuer(
        NAME, period=10, start=T0, clock=lambda: T0, key_factory=factory(offered)
    )
    assert [k.token_key_id for k in issuer.issuer_at(T0).public_keys] == [
        key_id(pool[1]),
        key_id(pool[0]),
    ]


@pytest.mark.parametrize(("period", "overlap"), [(0, None), (10, -1)])
def test_bad_schedule_is_refused(period: int, overlap: int | None) -> None:
    with pytest.raises(ConfigurationError):
        RotatingIssuer(NAME, period=period, overlap=overlap)


# ------------------------------------------------------------------------------ HTTP


@pytest.fixture
def served(pool: list[rsa.RSAPrivateKey]) -> Iterator[tuple[str, FakeClock]]:
    clock = FakeClock(T0 + 3)
    issuer = RotatingIssuer(NAME, period=10, start=T0, clock=clock, key_factory=factory(pool))
    with serve_asgi(create_issuer_app(issuer, directory_max_age=3600)) as url:
        yield url + DIRECTORY_PATH, clock


def test_directory_etag_and_max_age_follow_the_rotation(served: tuple[str, FakeClock]) -> None:
    url, clock = served
    with httpx.Client() as client:
        first = client.get(url)
        assert first.headers["cache-control"] == "max-age=7"  # until key 2 is published
        etag = first.headers["etag"]
        assert client.get(url, headers={"If-None-Match": etag}).status_code == 304

        clock.now = T0 + 10
        second = client.get(url, headers={"If-None-Match": etag})
        assert second.status_code == 200
        assert second.headers["etag"] != etag
        assert second.headers["cache-control"] == "max-age=10"
        assert len(parse_directory(second.content).token_keys) == 3


def test_keys_are_generated_off_the_event_loop(pool: list[rsa.RSAPrivateKey]) -> None:
    """A rotation's new key (tens of ms of RSA key generation) is made in a worker thread,
    never on the server's event loop, for directory fetches and token requests alike."""
    on_loop: list[bool] = []
    keys = factory(pool)

    def recording_factory() -> rsa.RSAPrivateKey:
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        return keys()

    clock = FakeClock(T0)
    issuer = RotatingIssuer(NAME, period=10, start=T0, clock=clock, key_factory=recording_factory)
    made_at_start = len(on_loop)
    with serve_asgi(create_issuer_app(issuer)) as url, httpx.Client() as client:
        clock.now = T0 + 10  # key 2 is due: the next request makes it
        assert client.get(url + DIRECTORY_PATH).status_code == 200
        clock.now = T0 + 20  # key 3 is due: made by a token request this time
        answer = client.post(
            url + "/token-request",
            content=b"\x00\x02",
            headers={"Content-Type": "application/private-token-request"},
        )
        assert answer.status_code == 400  # too short, but the issuer was chosen first
    assert len(on_loop) == made_at_start + 2
    assert on_loop[made_at_start:] == [False, False]


def test_directory_and_max_age_come_from_one_reading_of_the_clock(
    pool: list[rsa.RSAPrivateKey],
) -> None:
    """The clock moves past a rotation while a directory request is served: the answer's
    max-age belongs to the keys it lists (here: one second, not the next full period)."""
    readings = iter([float(T0), T0 + 9.99])

    def clock() -> float:
        return next(readings, T0 + 10.0)

    issuer = RotatingIssuer(NAME, period=10, start=T0, clock=clock, key_factory=factory(pool))
    with serve_asgi(create_issuer_app(issuer, directory_max_age=3600)) as url:
        answer = httpx.get(url + DIRECTORY_PATH)
    assert answer.status_code == 200
    assert len(parse_directory(answer.content).token_keys) == 2  # keys 1 and 0, as at 9.99
    assert answer.headers["cache-control"] == "max-age=1"

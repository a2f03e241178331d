"""The issuer app under a real uvicorn server, driven by the httpx client."""

from __future__ import annotations

import asyncio
import gzip
import json
import secrets
import tracemalloc
from collections.abc import Callable, Iterator

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.types import Receive, Scope, Send

from pat_middleware.core.wire import Token, TokenChallenge
from pat_middleware.errors import ConfigurationError, IssuanceError
from pat_middleware.issuer import (
    DIRECTORY_PATH,
    ISSUER_DIRECTORY_MEDIA_TYPE,
    LEGACY_DIRECTORY_PATH,
    TOKEN_REQUEST_MEDIA_TYPE,
    TOKEN_RESPONSE_MEDIA_TYPE,
    Issuer,
    SigningKey,
    begin_issuance,
    parse_directory,
)
from pat_middleware.issuer.client import (
    fetch_directory,
    fetch_directory_async,
    fetch_token,
    fetch_token_async,
)
from pat_middleware.issuer.server import create_issuer_app
from pat_middleware.tokens.blind_rsa import IssuerKey, encode_pss_spki
from tests._servers import ASGIApp, serve_asgi

PSS_48 = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
REQUEST_HEADERS = {"Content-Type": TOKEN_REQUEST_MEDIA_TYPE}


@pytest.fixture(scope="module")
def issuer(rsa_2048: rsa.RSAPrivateKey, other_rsa_2048: rsa.RSAPrivateKey) -> Issuer:
    return Issuer("issuer.example", rsa_2048, SigningKey(other_rsa_2048, not_before=1_700_000_000))


@pytest.fixture(scope="module")
def base_url(issuer: Issuer) -> Iterator[str]:
    with serve_asgi(create_issuer_app(issuer, directory_max_age=3600)) as url:
        yield url


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10.0) as c:
        yield c


@pytest.fixture
def challenge() -> TokenChallenge:
    return TokenChallenge(2, "issuer.example", secrets.token_bytes(32), ("origin.example",))


def _assert_verifies(token: Token, key: IssuerKey, challenge: TokenChallenge) -> None:
    assert token.challenge_digest == challenge.digest
    assert token.token_key_id == key.token_key_id
    key.public_key.verify(token.authenticator, token.authenticator_input, PSS_48, hashes.SHA384())


def _assert_clean_4xx(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text


# ---------------------------------------------------------------------- happy paths


def test_fetch_token(
    issuer: Issuer, base_url: str, client: httpx.Client, challenge: TokenChallenge
) -> None:
    key = issuer.preferred_key
    token = fetch_token(challenge, key, base_url, client)
    _assert_verifies(token, key, challenge)
    assert Token.from_bytes(token.to_bytes(), key.authenticator_length) == token


def test_fetch_token_with_second_key(
    issuer: Issuer, base_url: str, client: httpx.Client, challenge: TokenChallenge
) -> None:
    key = issuer.public_keys[1]
    _assert_verifies(fetch_token(challenge, key, base_url, client), key, challenge)


def test_fetch_token_async(issuer: Issuer, base_url: str, challenge: TokenChallenge) -> None:
    async def run() -> Token:
        async with httpx.AsyncClient(timeout=10.0) as async_client:
            return await fetch_token_async(challenge, issuer.preferred_key, base_url, async_client)

    _assert_verifies(asyncio.run(run()), issuer.preferred_key, challenge)


def test_fetch_token_from_exact_directory_url(
    issuer: Issuer, base_url: str, client: httpx.Client, challenge: TokenChallenge
) -> None:
    for path in (DIRECTORY_PATH, LEGACY_DIRECTORY_PATH):
        token = fetch_token(challenge, issuer.preferred_key, base_url + path, client)
        _assert_verifies(token, issuer.preferred_key, challenge)


def test_fetch_token_with_given_directory_and_absolute_uri(
    issuer: Issuer,
    base_url: str,
    client: httpx.Client,
    challenge: TokenChallenge,
    rsa_2048: rsa.RSAPrivateKey,
) -> None:
    # A directory object whose issuer-request-uri is absolute: no directory fetch happens.
    elsewhere = Issuer("issuer.example", rsa_2048, request_uri=f"{base_url}/token-request")
    token = fetch_token(challenge, issuer.preferred_key, elsewhere.directory(), client)
    _assert_verifies(token, issuer.preferred_key, challenge)


def test_legacy_directory_fallback(
    issuer: Issuer, client: httpx.Client, challenge: TokenChallenge
) -> None:
    inner = create_issuer_app(issuer)

    async def legacy_only(scope: Scope, receive: Receive, send: Send) -> None:
        # An older issuer: nothing at the RFC path, only the legacy one.
        if scope["type"] == "http" and scope["path"] == DIRECTORY_PATH:
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await inner(scope, receive, send)

    with serve_asgi(legacy_only) as url:
        assert client.get(url + DIRECTORY_PATH).status_code == 404
        directory, source = fetch_directory(url, client)
        assert source == url + LEGACY_DIRECTORY_PATH
        assert directory == issuer.directory()
        token = fetch_token(challenge, issuer.preferred_key, url, client)
        _assert_verifies(token, issuer.preferred_key, challenge)


# ------------------------------------------------------------------------ directory


def test_directory_endpoint(issuer: Issuer, base_url: str, client: httpx.Client) -> None:
    response = client.get(base_url + DIRECTORY_PATH)
    assert response.status_code == 200
    assert response.headers["content-type"] == ISSUER_DIRECTORY_MEDIA_TYPE
    assert response.headers["cache-control"] == "max-age=3600"
    etag = response.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    assert response.content == issuer.directory_bytes()
    assert parse_directory(response.content) == issuer.directory()
    document = json.loads(response.content)
    assert document["issuer-request-uri"] == "/token-request"
    assert [k["token-type"] for k in document["token-keys"]] == [2, 2]

    for if_none_match in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        cached = client.get(base_url + DIRECTORY_PATH, headers={"If-None-Match": if_none_match})
        assert cached.status_code == 304
        assert cached.headers["etag"] == etag
    assert client.get(base_url + DIRECTORY_PATH, headers={"If-None-Match": '"x"'}).status_code == (
        200
    )
    assert client.head(base_url + DIRECTORY_PATH).status_code == 200


def test_legacy_directory_path(issuer: Issuer, base_url: str, client: httpx.Client) -> None:
    response = client.get(base_url + LEGACY_DIRECTORY_PATH)
    assert response.status_code == 200
    assert response.content == issuer.directory_bytes()
    assert response.headers["etag"] == client.get(base_url + DIRECTORY_PATH).headers["etag"]


# ---------------------------------------------------------------------- bad requests


def _post(client: httpx.Client, url: str, body: bytes, **headers: str) -> httpx.Response:
    return client.post(url, content=body, headers={**REQUEST_HEADERS, **headers})


def test_valid_raw_request(
    issuer: Issuer, base_url: str, client: httpx.Client, challenge: TokenChallenge
) -> None:
    request, _ = begin_issuance(challenge, issuer.preferred_key)
    response = _post(client, base_url + "/token-request", request.to_bytes())
    assert response.status_code == 200
    assert response.headers["content-type"] == TOKEN_RESPONSE_MEDIA_TYPE
    assert response.headers["cache-control"] == "no-store"
    assert len(response.content) == 256
    # Media type parameters and case are tolerated.
    response = client.post(
        base_url + "/token-request",
        content=request.to_bytes(),
        headers={"Content-Type": "Application/Private-Token-Request; charset=binary"},
    )
    assert response.status_code == 200


def test_malformed_requests_get_4xx(
    issuer: Issuer, base_url: str, client: httpx.Client, challenge: TokenChallenge
) -> None:
    url = base_url + "/token-request"
    good = begin_issuance(challenge, issuer.preferred_key)[0].to_bytes()
    known = {k.token_key_id[-1] for k in issuer.public_keys}
    unknown_id = next(i for i in range(256) if i not in known)
    cases: list[tuple[bytes, int]] = [
        (b"", 400),
        (b"\x00\x02", 400),
        (b"\x00\x01" + good[2:], 422),  # token type 1
        (b"\xaa\xaa" + good[2:], 422),  # unknown type
        (good[:2] + bytes([unknown_id]) + good[3:], 422),
        (good[:-1], 422),
        (good[:3], 422),
        (good[:3] + b"\xff" * 256, 422),  # blinded_msg >= n
        (good[:3] + bytes(256), 422),  # blinded_msg == 0
        (good + b"\x00", 422),  # wrong size, under the body limit
        (good[:3] + bytes(1021), 422),  # exactly the 1 KiB limit
        (good[:3] + bytes(1022), 413),  # one byte over it
        (b"\x00" * 10_000, 413),
        (secrets.token_bytes(100), 422),  # any type, any key id: wrong somehow, never 5xx
    ]
    for body, status in cases:
        _assert_clean_4xx(_post(client, url, body), status)


def test_oversized_streamed_body_gets_413(base_url: str, client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(64):
            yield b"\x00" * 1024

    # No Content-Length: the body arrives chunked and the server stops reading at its limit.
    response = client.post(base_url + "/token-request", content=chunks(), headers=REQUEST_HEADERS)
    _assert_clean_4xx(response, 413)


def test_wrong_content_type_gets_415(
    issuer: Issuer, base_url: str, client: httpx.Client, challenge: TokenChallenge
) -> None:
    good = begin_issuance(challenge, issuer.preferred_key)[0].to_bytes()
    url = base_url + "/token-request"
    for content_type in ("application/octet-stream", "application/private-token-response", ""):
        response = client.post(url, content=good, headers={"Content-Type": content_type})
        _assert_clean_4xx(response, 415)
    _assert_clean_4xx(client.post(url, content=good), 415)


def test_wrong_methods_and_paths(base_url: str, client: httpx.Client) -> None:
    _assert_clean_4xx(client.get(base_url + "/token-request"), 405)
    _assert_clean_4xx(client.put(base_url + "/token-request", content=b"x"), 405)
    _assert_clean_4xx(client.post(base_url + DIRECTORY_PATH, content=b"x"), 405)
    _assert_clean_4xx(client.get(base_url + "/nope"), 404)


def test_custom_body_limit(issuer: Issuer, client: httpx.Client) -> None:
    with serve_asgi(create_issuer_app(issuer, max_body_size=259)) as url:
        _assert_clean_4xx(_post(client, url + "/token-request", bytes(260)), 413)
        _assert_clean_4xx(_post(client, url + "/token-request", bytes(259)), 422)


def test_app_configuration_errors(issuer: Issuer) -> None:
    with pytest.raises(ConfigurationError, match="max_body_size"):
        create_issuer_app(issuer, max_body_size=100)
    with pytest.raises(ConfigurationError, match="directory_max_age"):
        create_issuer_app(issuer, directory_max_age=-1)


# -------------------------------------------------------------------- client failures


def test_fetch_token_with_stale_key(
    base_url: str, client: httpx.Client, challenge: TokenChallenge, rsa_4096: rsa.RSAPrivateKey
) -> None:
    stale = IssuerKey.from_spki(encode_pss_spki(rsa_4096.public_key()), allow_4096=True)
    with pytest.raises(IssuanceError, match="not in the issuer directory"):
        fetch_token(challenge, stale, base_url, client)
    # Without the directory check the issuer itself refuses the unknown key id.
    with pytest.raises(IssuanceError, match="HTTP 4"):
        fetch_token(challenge, stale, base_url, client, require_listed_key=False)


def test_fetch_token_network_errors_are_issuance_errors(
    issuer: Issuer, client: httpx.Client, challenge: TokenChallenge
) -> None:
    with serve_asgi(create_issuer_app(issuer)) as url:
        pass  # the server is gone once the block ends; its port refuses connections
    with pytest.raises(IssuanceError) as info:
        fetch_token(challenge, issuer.preferred_key, url, client, timeout=2.0)
    assert info.value.status == 502
    with pytest.raises(IssuanceError):
        fetch_token(challenge, issuer.preferred_key, "ftp://issuer.example", client)


def test_client_asks_for_identity_and_refuses_compressed_answers(
    issuer: Issuer, client: httpx.Client, challenge: TokenChallenge
) -> None:
    """A gzip directory (small on the wire, 32 MiB inflated) is refused unread, sync and
    async, and the client asked for identity in the first place."""
    bomb = gzip.compress(b"{" + b" " * (32 << 20) + b"}")
    seen: list[str] = []

    async def compressing(scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        seen.append(headers.get(b"accept-encoding", b"").decode())
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/private-token-issuer-directory"),
                    (b"content-encoding", b"gzip"),
                    (b"content-length", str(len(bomb)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": bomb})

    with serve_asgi(compressing) as url:
        with pytest.raises(IssuanceError, match="only identity"):
            fetch_directory(url, client)
        with pytest.raises(IssuanceError, match="only identity"):
            fetch_token(challenge, issuer.preferred_key, url, client)

        async def fetch_async() -> None:
            async with httpx.AsyncClient(timeout=10.0) as async_client:
                await fetch_directory_async(url, async_client)

        with pytest.raises(IssuanceError, match="only identity"):
            asyncio.run(fetch_async())
    assert seen and set(seen) == {"identity"}


def _redirecting_with_a_bomb(issuer: Issuer) -> ASGIApp:
    """``issuer`` at /real/..., and a redirect there from every other path, whose body is
    gzip that inflates to 64 MiB (302 for GET, 307 for POST)."""
    bomb = gzip.compress(b" " * (64 << 20))

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/real/directory":
            body = issuer.directory_bytes().replace(b'"/token-request"', b'"token-request"')
            status, headers = 200, [(b"content-type", ISSUER_DIRECTORY_MEDIA_TYPE.encode())]
        elif scope["path"] == "/real/token-request":
            request = b""
            while True:
                message = await receive()
                request += message.get("body", b"")
                if not message.get("more_body"):
                    break
            body = issuer.issue(request)
            status, headers = 200, [(b"content-type", TOKEN_RESPONSE_MEDIA_TYPE.encode())]
        else:
            post = scope["method"] == "POST"
            where = b"/real/token-request" if post else b"/real/directory"
            status, body = (307 if post else 302), bomb
            headers = [(b"location", where), (b"content-encoding", b"gzip")]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def _peak_memory(run: Callable[[], object]) -> int:
    """The most memory Python held (all threads) while ``run`` ran."""
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_redirect_bodies_are_never_read(issuer: Issuer, challenge: TokenChallenge) -> None:
    """httpx, following redirects itself, reads each redirect's body whole (and inflated)
    before any bound applies: the client follows them without reading them, for the
    directory and, with a client that follows redirects, for the token request too."""
    key = issuer.preferred_key
    results: list[object] = []
    with serve_asgi(_redirecting_with_a_bomb(issuer)) as url:
        with httpx.Client(timeout=10.0, follow_redirects=True) as following:
            assert _peak_memory(lambda: results.append(fetch_directory(url, following)[1])) < (
                8 << 20
            )
            assert _peak_memory(
                lambda: results.append(fetch_token(challenge, key, url, following))
            ) < (8 << 20)

        async def run_async() -> None:
            async with httpx.AsyncClient(timeout=10.0, follow_redirects=True) as client:
                results.append((await fetch_directory_async(url, client))[1])
                results.append(await fetch_token_async(challenge, key, url, client))

        assert _peak_memory(lambda: asyncio.run(run_async())) < 8 << 20
    assert results[0] == results[2] == url + "/real/directory"
    for token in (results[1], results[3]):
        assert isinstance(token, Token)
        _assert_verifies(token, key, challenge)


def test_a_redirect_loop_is_an_issuance_error(client: httpx.Client) -> None:
    async def looping(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = [(b"location", scope["path"].encode()), (b"content-length", b"0")]
            await send({"type": "http.response.start", "status": 302, "headers": headers})
            await send({"type": "http.response.body", "body": b""})

    with (
        serve_asgi(looping) as url,
        pytest.raises(IssuanceError, match="too many redirects") as info,
    ):
        fetch_directory(url, client)
    assert info.value.status == 502


def test_a_compressed_token_response_is_refused(
    issuer: Issuer, client: httpx.Client, challenge: TokenChallenge
) -> None:
    """The directory is fine; the token answer comes gzip-encoded: refused, sync and async."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] == "GET":
            body = issuer.directory_bytes()
            headers = [(b"content-type", ISSUER_DIRECTORY_MEDIA_TYPE.encode())]
        else:
            body = gzip.compress(b"\0" * 256)
            headers = [
                (b"content-type", TOKEN_RESPONSE_MEDIA_TYPE.encode()),
                (b"content-encoding", b"gzip"),
            ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def fetch_async(url: str) -> None:
        async with httpx.AsyncClient(timeout=10.0) as async_client:
            await fetch_token_async(challenge, issuer.preferred_key, url, async_client)

    with serve_asgi(app) as url:
        with pytest.raises(IssuanceError, match="token request: Content-Encoding 'gzip'"):
            fetch_token(challenge, issuer.preferred_key, url, client)
        with pytest.raises(IssuanceError, match="token request: Content-Encoding 'gzip'"):
            asyncio.run(fetch_async(url))


@pytest.mark.parametrize("declared", ["²", "\u00b3", "-1"])
def test_a_content_length_of_non_ascii_digits_is_a_400_not_a_traceback(
    issuer: Issuer, declared: str
) -> None:
    # "²".isdigit() is true but int("²") raises: the server must answer, not crash.
    sent: list[dict[str, object]] = []
    scope: dict[str, object] = {
        "type": "http",
        "method": "POST",
        "path": "/token-request",
        "raw_path": b"/token-request",
        "query_string": b"",
        "headers": [
            (b"content-type", TOKEN_REQUEST_MEDIA_TYPE.encode()),
            (b"content-length", declared.encode("latin-1", "replace")),
        ],
    }

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    asyncio.run(create_issuer_app(issuer)(scope, receive, send))  # type: ignore[arg-type]
    assert sent[0]["status"] == 400

"""A small HTTP/1.1 load driver, for machines without ``wrk``.

``python -m benchmarks.loadgen URL --seconds S --connections C [--tokens FILE] [--cookie C]``
keeps C keep-alive connections busy for S seconds (reconnecting when the server closes),
sends a fresh Authorization line from FILE on every request when given (stopping when they
run out, so none is sent twice), and prints one line like wrk's script does:
``RESULT duration_us requests n200 n401 nother errors tokens_ran_out``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from urllib.parse import urlsplit


class _Shared:
    def __init__(self, tokens: list[str], deadline: float) -> None:
        self.tokens = tokens
        self.used = 0
        self.deadline = deadline
        self.counts = {"200": 0, "401": 0, "other": 0, "errors": 0}
        self.stopped_at: float | None = None

    def next_token(self) -> str | None:
        if self.used >= len(self.tokens):
            return None
        self.used += 1
        return self.tokens[self.used - 1]

    def done(self) -> bool:
        if self.stopped_at is not None:
            return True
        if time.monotonic() >= self.deadline:
            self.stopped_at = time.monotonic()
            return True
        return False


async def _connection(host: str, port: int, path: str, cookie: str | None, shared: _Shared) -> None:
    base = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
    if cookie:
        base += f"Cookie: {cookie}\r\n"
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    while not shared.done():
        if shared.tokens:
            token = shared.next_token()
            if token is None:
                shared.stopped_at = shared.stopped_at or time.monotonic()
                break
            request = f"{base}Authorization: {token}\r\n\r\n".encode("latin-1")
        else:
            request = (base + "\r\n").encode("latin-1")
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            assert reader is not None
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = lines[0].split(" ", 2)[1]
            length = 0
            close = False
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "connection" and value.strip().lower() == "close":
                    close = True
            if length:
                await reader.readexactly(length)
            key = status if status in ("200", "401") else "other"
            shared.counts[key] += 1
            if close:
                writer.close()
                writer = None
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            shared.counts["errors"] += 1
            if writer is not None:
                writer.close()
            writer = None
    if writer is not None:
        writer.close()


async def drive(
    url: str, seconds: float, connections: int, tokens: list[str], cookie: str | None
) -> str:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path or "/"
    start = time.monotonic()
    shared = _Shared(tokens, start + seconds)
    await asyncio.gather(
        *(_connection(host, port, path, cookie, shared) for _ in range(connections))
    )
    end = shared.stopped_at or time.monotonic()
    c = shared.counts
    done = c["200"] + c["401"] + c["other"]
    return (
        f"RESULT {int((end - start) * 1e6)} {done} {c['200']} {c['401']} {c['other']} "
        f"{c['errors']} {int(bool(tokens) and shared.used >= len(tokens))}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("url")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--tokens", help="file with one Authorization value a line")
    parser.add_argument("--cookie")
    args = parser.parse_args()
    tokens: list[str] = []
    if args.tokens:
        with open(args.tokens, encoding="latin-1") as f:
            tokens = [line.rstrip("\n") for line in f if line.strip()]
    try:
        import uvloop  # type: ignore[import-not-found,unused-ignore]

        uvloop.install()
    except ImportError:
        pass
    print(asyncio.run(drive(args.url, args.seconds, args.connections, tokens, args.cookie)))


if __name__ == "__main__":
    main()

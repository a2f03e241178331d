"""Shared pieces: the issuer key and settings, token minting, interleaved rounds, the table."""

from __future__ import annotations

import gc
import os
import secrets
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from pat_middleware import IssuerKey, Token, TokenChallenge, build_authorization, encode_pss_spki
from pat_middleware.policy import Policy, RequestInfo
from pat_middleware.settings import Settings

ISSUER = "issuer.example"
ORIGIN = "origin.example"
SECRET = "benchmark-secret-0123456789-abcdefghijklmnop"
#: `none` mode as the verification figures run it: no verified mark, and the memory store
#: of one process (which that mode accepts only with the opt-in).
NONE_MODE: dict[str, Any] = {
    "redemption_context": "none",
    "verified_duration": 0,
    "allow_per_process_replay": True,
}
#: RSASSA-PSS with SHA-384, MGF1-SHA-384, 48-byte salt: what type-2 tokens carry.
PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
SHA384 = hashes.SHA384()
#: Set to keep the harness from installing wrk (apt-get) or the Node peer (npm ci).
NO_INSTALL_ENV = "PAT_BENCH_NO_INSTALL"
#: Below this many tokens, minting in this process beats starting a pool.
_POOL_THRESHOLD = 400


def installs_allowed() -> bool:
    return not os.environ.get(NO_INSTALL_ENV)


@dataclass(frozen=True)
class Options:
    """What the command line chose."""

    quick: bool = False
    rounds: int = 5
    seconds: float = 3.0  # per HTTP measurement
    connections: int = 32
    loadgen: str = "auto"  # auto | wrk | python
    only: frozenset[str] = frozenset()
    servers: frozenset[str] = frozenset({"asgi", "wsgi"})
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pat-bench-")))

    def wants(self, section: str) -> bool:
        return not self.only or section in self.only


@dataclass
class Row:
    """One figure: a ratio of two rates measured side by side, round by round."""

    item: str
    name: str
    ours: str  # what the numerator measures
    base: str  # what the denominator measures
    ratios: list[float] = field(default_factory=list)
    ours_rates: list[float] = field(default_factory=list)
    base_rates: list[float] = field(default_factory=list)
    target: float | None = None  # ratio must be >= target
    target_text: str = ""
    unit: str = "/s"
    note: str = ""

    def add(self, ours: float, base: float) -> None:
        self.ours_rates.append(ours)
        self.base_rates.append(base)
        self.ratios.append(ours / base if base else 0.0)

    @property
    def median(self) -> float:
        return statistics.median(self.ratios)

    def verdict(self) -> str:
        if self.target is None or not self.ratios:
            return ""
        return "met" if self.median >= self.target else "**not met**"


@dataclass
class Skip:
    """A figure that could not be measured here, and why."""

    item: str
    name: str
    reason: str


@dataclass
class Value:
    """A figure that is not a ratio (bytes per entry, commands per redemption)."""

    item: str
    name: str
    values: list[float]
    unit: str
    target: float | None = None  # value must be <= target
    target_text: str = ""
    note: str = ""

    def verdict(self) -> str:
        if self.target is None or not self.values:
            return ""
        return "met" if statistics.median(self.values) <= self.target else "**not met**"


Result = Row | Skip | Value


def interleaved(rounds: int, ours: Callable[[], float], base: Callable[[], float], row: Row) -> Row:
    """Measure ``ours`` and ``base`` back to back each round, alternating which goes first,
    so slow drifts of the machine hit both sides alike."""
    for i in range(rounds):
        if i % 2 == 0:
            a = ours()
            b = base()
        else:
            b = base()
            a = ours()
        row.add(a, b)
    return row


def paired(
    rounds: int,
    chunks: int,
    ours: Callable[[int], object],
    base: Callable[[int], object],
    ops_per_chunk: int,
    row: Row,
    new_round: Callable[[], None] | None = None,
) -> Row:
    """Micro-benchmark pairs: each round runs ``chunks`` small chunks of each side in turn
    (``ours(i)`` / ``base(i)`` perform ``ops_per_chunk`` operations on chunk ``i``), so both
    sides see the same moments of a noisy machine. Time is this thread's CPU time, so time
    spent descheduled by other processes counts on neither side."""
    clock = time.thread_time
    for _ in range(rounds):
        if new_round is not None:
            new_round()
        gc.collect()
        spent_ours = spent_base = 0.0
        for i in range(chunks):
            first, second = (ours, base) if i % 2 == 0 else (base, ours)
            t0 = clock()
            first(i)
            t1 = clock()
            second(i)
            t2 = clock()
            if first is ours:
                spent_ours += t1 - t0
                spent_base += t2 - t1
            else:
                spent_base += t1 - t0
                spent_ours += t2 - t1
        done = chunks * ops_per_chunk
        row.add(done / spent_ours, done / spent_base)
    return row


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Terminate a server the harness started, and kill it when it will not stop."""
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


# ------------------------------------------------------------------------------ the issuer


@dataclass(frozen=True)
class Issuer:
    """A test issuer key pair, as the origin sees it (``key``) and as a signer holds it."""

    private: rsa.RSAPrivateKey
    key: IssuerKey

    @classmethod
    def generate(cls) -> Issuer:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(private, IssuerKey.from_spki(encode_pss_spki(private.public_key())))

    def settings_mapping(self, **overrides: Any) -> dict[str, Any]:
        return self.settings_mapping_for(self.key.token_key, **overrides)

    @staticmethod
    def settings_mapping_for(token_key: str, **overrides: Any) -> dict[str, Any]:
        """The benchmark settings trusting ``token_key`` as ``ISSUER``."""
        data: dict[str, Any] = {
            "issuers": [{"name": ISSUER, "token_key": token_key}],
            "secret": SECRET,
            "protect": ["/protected"],
            "origin_info": [ORIGIN],
            "cookie_secure": False,
        }
        data.update(overrides)
        return data

    def settings(self, **overrides: Any) -> Settings:
        return Settings.from_mapping(self.settings_mapping(**overrides))

    def write_settings(self, path: Path, **overrides: Any) -> Path:
        """A TOML settings file the server processes read."""
        lines = []
        for name, value in self.settings_mapping(**overrides).items():
            if name == "issuers":
                continue
            lines.append(f"{name} = {_toml(value)}")
        lines += ["", "[[issuers]]", f'name = "{ISSUER}"', f'token_key = "{self.key.token_key}"']
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def private_pem(self) -> bytes:
        return self.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def mint(self, challenge: TokenChallenge, count: int) -> list[bytes]:
        """``count`` valid tokens for ``challenge``, each with a fresh nonce.

        An unblinded RSABSSA signature is a plain RSASSA-PSS signature, so signing the
        token input directly gives exactly what issuance would.
        """
        if count < _POOL_THRESHOLD:
            return _mint(self.private, self.key, challenge.to_bytes(), count)
        workers = os.cpu_count() or 1
        share = [count // workers + (i < count % workers) for i in range(workers)]
        with ProcessPoolExecutor(workers) as pool:
            parts = pool.map(
                _mint_pem,
                [self.private_pem()] * workers,
                [self.key.token_key] * workers,
                [challenge.to_bytes()] * workers,
                share,
            )
            return [t for part in parts for t in part]


def _mint(private: rsa.RSAPrivateKey, key: IssuerKey, challenge: bytes, count: int) -> list[bytes]:
    digest = TokenChallenge.from_bytes(challenge).digest
    out = []
    for _ in range(count):
        unsigned = Token(key.token_type, secrets.token_bytes(32), digest, key.token_key_id, b"\0")
        token_input = unsigned.authenticator_input
        out.append(token_input + private.sign(token_input, PSS, SHA384))
    return out


def _mint_pem(pem: bytes, token_key: str, challenge: bytes, count: int) -> list[bytes]:
    private = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    return _mint(private, IssuerKey.from_base64(token_key), challenge, count)


def session_challenge(policy: Policy) -> tuple[str, TokenChallenge]:
    """A fixed session cookie and the per-session challenge a 401 gives it right now."""
    from pat_middleware.core.headers import parse_www_authenticate

    first = policy.evaluate(RequestInfo("GET", "/protected"))
    cookie = next(
        value.split(";", 1)[0] for name, value in first.header_lines() if name == "Set-Cookie"
    )
    again = policy.evaluate(RequestInfo("GET", "/protected", cookie=cookie))
    header = dict(again.headers)["WWW-Authenticate"]
    challenge = TokenChallenge.from_bytes(parse_www_authenticate(header)[0].challenge)
    return cookie, challenge


def authorizations(tokens: Sequence[bytes]) -> list[str]:
    return [build_authorization(t) for t in tokens]


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


# ------------------------------------------------------------------------------ the report


def _fmt_rate(value: float, unit: str) -> str:
    if unit == "/s":
        return f"{value:,.0f}/s"
    return f"{value:,.1f} {unit}"


def markdown(results: Sequence[Result]) -> str:
    """The results as a Markdown table (paste it into BENCHMARKS.md)."""
    lines = [
        "| # | figure | ours (median) | baseline (median) | ratio min | median | max | target | |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if isinstance(r, Skip):
            lines.append(f"| {r.item} | {r.name} | skipped: {r.reason} | | | | | | |")
        elif isinstance(r, Value):
            lo, med, hi = min(r.values), statistics.median(r.values), max(r.values)
            lines.append(
                f"| {r.item} | {r.name} | {med:,.2f} {r.unit} | | {lo:,.2f} | {med:,.2f} "
                f"| {hi:,.2f} | {r.target_text} | {r.verdict()} |"
            )
        else:
            lines.append(
                f"| {r.item} | {r.name} ({r.ours} / {r.base}) "
                f"| {_fmt_rate(statistics.median(r.ours_rates), r.unit)} "
                f"| {_fmt_rate(statistics.median(r.base_rates), r.unit)} "
                f"| {min(r.ratios):.3f} | {r.median:.3f} | {max(r.ratios):.3f} "
                f"| {r.target_text} | {r.verdict()} |"
            )
    notes = [
        f"* {r.item} {r.name}: {r.note}" for r in results if not isinstance(r, Skip) and r.note
    ]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)

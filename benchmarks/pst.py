"""Item 8: Private State Tokens. Our PST issuer's issuance (a batch of 10) and redemption
rates, and a redemption record (``Sec-Redemption-Record``) judged per request by the policy.

* Issuance: :meth:`PSTIssuer.issue` on a browser's request of 10 blinded elements (made by
  :func:`~pat_middleware.issuer.pst_client.begin_issuance`, as Chromium would send them):
  10 scalar multiplications on P-384 and one batched DLEQ proof. Issuances per second.
* Redemption: :meth:`PSTIssuer.redeem` on one token per call (HashToGroup, one scalar
  multiplication, the constant-time compare, one replay-store spend, the record signed
  with Ed25519). Redemptions per second.
* Record per request: :meth:`Policy.evaluate` on a request carrying one of our records
  (header parsed, issuer looked up, JWS parsed, Ed25519 verified, claims checked; nothing
  spent) against the bare Ed25519 verify of the same record's signing input, side by side.
"""

from __future__ import annotations

import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pat_middleware.core.jose import b64url_decode_canonical
from pat_middleware.core.jwks import RecordKeySet
from pat_middleware.issuer.pst import PSTIssuer
from pat_middleware.issuer.pst_client import begin_issuance, finalize_issuance
from pat_middleware.issuer.pst_keys import new_key_set
from pat_middleware.issuer.pst_wire import IssueResponse
from pat_middleware.policy import Outcome, Policy, RequestInfo
from pat_middleware.settings import Settings

from .common import SECRET, Options, Result, Row, Value, paired

ITEM = "8"
ISSUER_ORIGIN = "https://pst-issuer.example"
SITE = "https://www.example.com"
BATCH = 10


def run(_issuer: object, opts: Options) -> list[Result]:
    keys = new_key_set()
    issuer = PSTIssuer(keys, issuer_origin=ISSUER_ORIGIN, batch_size=BATCH)
    commitment = issuer.commitment()
    rounds = opts.rounds
    issuances = 3 if opts.quick else 20
    redemptions = 20 if opts.quick else 200

    issue_rates: list[float] = []
    redeem_rates: list[float] = []
    for _ in range(rounds):
        requests = [begin_issuance(BATCH) for _ in range(issuances)]
        clock = time.thread_time
        start = clock()
        answers = [issuer.issue(request.to_header()) for request, _ in requests]
        issue_rates.append(issuances / (clock() - start))
        tokens = []
        for (_, pending), answer in zip(requests, answers, strict=True):
            tokens += finalize_issuance(
                pending, IssueResponse.from_header(answer.header), commitment
            )
        while len(tokens) < redemptions:  # more tokens than a round's issuances gave
            request, pending = begin_issuance(BATCH)
            answer = issuer.issue(request.to_header())
            tokens += finalize_issuance(
                pending, IssueResponse.from_header(answer.header), commitment
            )
        now = int(time.time())
        headers = [t.redeem_request(SITE, now).to_header() for t in tokens[:redemptions]]
        start = clock()
        for header in headers:
            issuer.redeem(header)
        redeem_rates.append(redemptions / (clock() - start))
    results: list[Result] = [
        Value(
            ITEM,
            f"PST issuance, a batch of {BATCH} (PSTIssuer.issue)",
            issue_rates,
            "/s",
            note=(
                f"issuances per second of this thread's CPU, {issuances} a round: {BATCH} "
                "P-384 scalar multiplications and one batched DLEQ proof each "
                "(PrivateStateTokenV1VOPRF); the blinded elements made beforehand."
            ),
        ),
        Value(
            ITEM,
            "PST redemption, one token (PSTIssuer.redeem)",
            redeem_rates,
            "/s",
            note=(
                "redemptions per second of this thread's CPU: HashToGroup, one scalar "
                "multiplication, the compare, one memory-store spend and the Ed25519-signed "
                "record."
            ),
        ),
    ]
    results.append(_record_per_request(issuer, opts))
    return results


def _record_per_request(issuer: PSTIssuer, opts: Options) -> Row:
    """A redemption record judged by the policy on every request, against the bare verify."""
    request, pending = begin_issuance(1)
    answer = issuer.issue(request.to_header())
    token = finalize_issuance(
        pending, IssueResponse.from_header(answer.header), issuer.commitment()
    )
    record = issuer.redeem(token[0].redeem_request(SITE, int(time.time())).to_header()).record
    workdir = opts.workdir
    jwks = Path(workdir) / "pst-record-keys.json"
    jwks.write_bytes(issuer.record_key_set().to_bytes())
    settings = Settings.from_mapping(
        {
            "secret": SECRET,
            "origin_info": ["www.example.com"],
            "protect": ["/protected"],
            "pst_issuers": [{"origin": ISSUER_ORIGIN, "jwks_file": str(jwks)}],
        }
    )
    policy = Policy(settings)
    header = f'"{ISSUER_ORIGIN}";redemption-record="{record}"'
    info = RequestInfo("GET", "/protected", redemption_record=header)
    if policy.evaluate(info).outcome is not Outcome.PASS:
        raise AssertionError("a valid redemption record was refused")
    signing_input, _, signature_text = record.rpartition(".")
    signature = b64url_decode_canonical(signature_text, "signature")
    public = _public_key(issuer.record_key_set())
    raw_input = signing_input.encode("ascii")
    repeat = 50
    evaluate = policy.evaluate

    def ours(_: int) -> None:
        for _ in range(repeat):
            if evaluate(info).outcome is not Outcome.PASS:
                raise AssertionError("a valid redemption record was refused")

    def raw(_: int) -> None:
        for _ in range(repeat):
            public.verify(signature, raw_input)

    row = Row(
        ITEM,
        "PST redemption record judged per request (`Sec-Redemption-Record`)",
        "Policy.evaluate",
        "raw Ed25519 verify",
        note=(
            "a request carrying one of our records: the structured header parsed, the "
            "issuer's keys looked up, the compact JWS parsed, its Ed25519 signature "
            "verified, issuer, times and redeeming origin checked; nothing spent. Raw: "
            "`Ed25519PublicKey.verify` on the same signing input and signature."
        ),
    )
    return paired(opts.rounds, 10 if opts.quick else 100, ours, raw, repeat, row)


def _public_key(keys: RecordKeySet) -> Ed25519PublicKey:
    return keys.keys[0].public_key

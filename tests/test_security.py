"""Security regressions: one named test per attack, each asserting the exact refusal.

Attacks go through the real :class:`Policy` (sans-IO, on a fake clock where time matters) and,
where it is cheap, through the ASGI middleware under a real uvicorn server, where the refusal
reason is read from the decision's log record.
"""

from __future__ import annotations

import gc

from cryptography.hazmat.primitives.asymmetric import rsa

from pat_middleware.errors import Reason
from pat_middleware.keys import IssuerKey
from pat_middleware.policy import Outcome, Policy

from ._origin import Browser, answer, make_settings

# ------------------------------------------------------------------- memory hygiene


def test_refused_token_leaves_no_reference_cycle(
    rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    """A refused request must be freed at once, not when the cyclic collector runs: until
    then its token, cookies and context stay in memory (and a flood of bad tokens grows it)."""
    browser = Browser(Policy(make_settings(issuer_key)))
    token = bytearray(answer(browser.challenge(), rsa_2048, issuer_key))
    token[-1] ^= 1
    gc.collect()
    gc.disable()
    try:
        decision = browser.get(token=bytes(token))
        unreachable = gc.collect()
    finally:
        gc.enable()
    assert (decision.outcome, decision.reason) == (Outcome.REJECT, Reason.BAD_SIGNATURE)
    assert unreachable == 0

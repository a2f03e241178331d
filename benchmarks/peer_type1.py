"""Item 6: type-1 (VOPRF P-384) verification rate against @cloudflare/privacypass-ts.

Both sides get the same Authorization headers and the same issuer private key, each in its
own process, one verification at a time: ``node node/verify_type1.mjs`` (parse the header,
``privateVerif.Origin.verify(token, privateKey)``) and ``python -m benchmarks.peer_type1``
(``Policy.evaluate`` in ``none`` mode with the per-process opt-in: parse, key lookup,
challenge digest, the VOPRF evaluation with the issuer key, replay store). Type-1 tokens cost
milliseconds on both sides, so fewer are timed than for item 5.
"""

from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path

from pat_middleware.core.codec import b64url_encode
from pat_middleware.core.wire import Token, TokenChallenge
from pat_middleware.tokens.oprf import evaluate
from pat_middleware.tokens.voprf import VOPRFTokenKey

from .common import (
    ISSUER,
    NONE_MODE,
    Issuer,
    Options,
    Result,
    Row,
    Skip,
    authorizations,
    interleaved,
)
from .peer import NODE_DIR, PACKAGE, _version, judge_when_told, node_problem, race

ITEM = "6"


def settings_mapping(key_file: str) -> dict[str, object]:
    """The benchmark origin's settings, trusting the type-1 key in ``key_file``."""
    mapping = Issuer.settings_mapping_for("", **NONE_MODE, token_types=[1])
    mapping["issuers"] = [{"name": ISSUER, "private_key_file": key_file}]
    return mapping


def mint(key: VOPRFTokenKey, challenge: TokenChallenge, count: int) -> list[bytes]:
    """``count`` valid type-1 tokens for ``challenge``: the authenticator is the VOPRF output
    of the token input, exactly what a client's Finalize gives after issuance."""
    out = []
    for _ in range(count):
        token_input = Token(
            1, secrets.token_bytes(32), challenge.digest, key.token_key_id, b"-"
        ).authenticator_input
        out.append(token_input + evaluate(key.secret_key, token_input))
    return out


def run(issuer: Issuer, opts: Options) -> list[Result]:
    name = f"peer, type 1: {PACKAGE}"
    problem = node_problem()
    if problem is not None:
        return [Skip(ITEM, name, problem)]
    from pat_middleware.policy import Policy
    from pat_middleware.settings import Settings

    key = VOPRFTokenKey.generate()
    key_file = opts.workdir / "type1-issuer.pem"
    key_file.write_bytes(key.private_pem())
    policy = Policy(Settings.from_mapping(settings_mapping(str(key_file))))
    count = 20 if opts.quick else 200
    tokens = mint(key, policy.templates[0][0].challenge(b""), count)
    scalar = key.secret_key.private_key.private_numbers().private_value.to_bytes(48, "big")
    data = opts.workdir / "peer-type1-input.json"
    data.write_text(
        json.dumps(
            {
                "private_key": b64url_encode(scalar),
                "key_file": str(key_file),
                "headers": authorizations(tokens),
            }
        )
    )
    rounds = 1 if opts.quick else opts.rounds
    row = Row(
        ITEM,
        f"peer, type-1 verification one at a time, 1 process a side ({PACKAGE} {_version()})",
        "Policy.evaluate",
        "privacypass-ts",
        target=1.0,
        target_text=">= 1.0",
        note=(
            "the same headers and issuer key on both sides. Node: `AuthorizationHeader.parse("
            "VOPRF, header)` then `privateVerif.Origin().verify(token, privateKey)`, each "
            "awaited. Ours: Policy.evaluate in `none` mode (with the per-process opt-in), "
            "which also checks the key id, the challenge digest and the replay store."
        ),
    )
    interleaved(
        rounds,
        lambda: race("python", [sys.executable, "-m", "benchmarks.peer_type1", str(data)], 1),
        lambda: race("node", ["node", str(NODE_DIR / "verify_type1.mjs"), str(data)], 1),
        row,
    )
    return [row]


def _child(data_file: str) -> None:
    """This side's process (see :func:`benchmarks.peer.judge_when_told`)."""
    from pat_middleware.settings import Settings

    data = json.loads(Path(data_file).read_text())
    settings = Settings.from_mapping(settings_mapping(data["key_file"]))
    judge_when_told(settings, data["headers"], warm=5)


if __name__ == "__main__":
    _child(sys.argv[1])

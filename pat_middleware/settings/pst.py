"""Settings for Private State Token redemption records: which PST issuers this site trusts,
where their record verification keys come from, and which redeeming origins it accepts.

Two settings keys, read by :func:`parse_pst_settings` (the settings loader calls it with the
whole mapping; every problem is a :class:`ConfigurationError` naming the setting)::

    pst_issuers = [
        {origin = "https://issuer.example", jwks = "https://issuer.example"},
        {origin = "https://other.example", jwks_file = "other-rr-keys.json", labels = [1, 2]},
    ]
    pst_accepted_origins = ["https://www.example.com"]

* ``origin``: the issuer origin, as ``Sec-Redemption-Record`` names it and records carry in
  ``iss``.
* ``jwks``: the URL of the issuer's JWK Set of record verification keys, fetched and
  refreshed like issuer directories (the ``directory_*`` settings apply). A URL that is only
  an origin means the well-known path (:data:`~pat_middleware.core.jwks.JWKS_PATH`). https,
  or http for loopback hosts or with ``development = true``.
* ``jwks_file``: a JWK Set on disk (read strictly, at start-up): keys trusted without any
  fetch. With ``jwks`` too, these are trusted beside the fetched ones.
* ``labels``: the trust labels (PST key ids, uint32) accepted from this issuer; absent: any.
* ``pst_accepted_origins``: the top-level origins records must have been redeemed for; by
  default ``https://`` + each ``origin_info`` name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.jwks import JWKS_PATH, MAX_JWKS_LENGTH, RecordKey, RecordKeySet
from ..core.origin import normalize_origin
from ..errors import ConfigurationError, DecodeError
from .checks import failer, fetch_url, fetchable_url, read_limited, table

#: The settings keys :func:`parse_pst_settings` reads (add them to the loader's known keys).
PST_SETTINGS_KEYS = frozenset({"pst_issuers", "pst_accepted_origins"})
#: The keys of one ``pst_issuers`` entry.
PST_ISSUER_KEYS = frozenset({"origin", "jwks", "jwks_file", "labels"})
UINT32_MAX = 2**32 - 1


@dataclass(frozen=True, slots=True)
class PSTIssuerConfig:
    """One trusted PST issuer: its origin, where its record keys are fetched from (None: only
    the configured ones), the configured keys, and the accepted trust labels (None: any)."""

    origin: str
    jwks_url: str | None = None
    keys: tuple[RecordKey, ...] = ()
    labels: frozenset[int] | None = None
    #: The setting that named the JWK Set URL, for errors (``pst_issuers[0].jwks``).
    setting: str = ""

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "origin", normalize_origin(self.origin))
            RecordKeySet(self.keys)  # kids unique, not too many
        except DecodeError as e:
            raise ConfigurationError(self.setting or "pst_issuers", str(e)) from None
        if self.jwks_url is None and not self.keys:
            raise ConfigurationError(
                self.setting or "pst_issuers", "a PST issuer needs jwks or jwks_file"
            )
        if self.jwks_url is not None:
            # Built by hand, a URL the refresher cannot fetch would only show in a background
            # thread's log: refuse it now. Plain http, user information and fragments are the
            # settings' policy (``fetch_url``), not checked here.
            fetchable_url(self.jwks_url, self.setting or "pst_issuers.jwks", failer(""))

    def __repr__(self) -> str:
        return (
            f"PSTIssuerConfig({self.origin!r}, fetched={self.jwks_url is not None}, "
            f"keys={len(self.keys)}, labels={sorted(self.labels) if self.labels else None})"
        )


@dataclass(frozen=True, slots=True)
class PSTSettings:
    """The trusted PST issuers and the redeeming origins accepted (both normalized)."""

    issuers: tuple[PSTIssuerConfig, ...] = ()
    accepted_origins: frozenset[str] = field(default_factory=frozenset)


def parse_pst_settings(
    data: Mapping[str, Any],
    *,
    origin_info: Sequence[str] = (),
    base_dir: Path | None = None,
    development: bool = False,
    source: str = "",
) -> PSTSettings:
    """Read ``pst_issuers`` and ``pst_accepted_origins`` from a settings mapping (other keys
    are ignored). ``origin_info`` gives the default accepted origins, ``base_dir`` anchors
    relative ``jwks_file`` paths (default: the working directory), ``development`` allows
    plain-http JWK Set URLs off loopback, ``source`` names the settings file in errors."""
    return _Reader(data, base_dir or Path.cwd(), development, source).read(origin_info)


class _Reader:
    def __init__(
        self, data: Mapping[str, Any], base_dir: Path, development: bool, source: str
    ) -> None:
        self.data = data
        self.base_dir = base_dir
        self.development = development
        self.fail = failer(source)

    def read(self, origin_info: Sequence[str]) -> PSTSettings:
        raw = self.data.get("pst_issuers", [])
        if not isinstance(raw, list | tuple):
            raise self.fail("pst_issuers", "expected a list of tables with origin and jwks")
        issuers = tuple(self.issuer(entry, f"pst_issuers[{i}]") for i, entry in enumerate(raw))
        origins = [issuer.origin for issuer in issuers]
        if len(set(origins)) != len(origins):
            raise self.fail("pst_issuers", "each issuer origin may appear once")
        if not issuers and "pst_accepted_origins" not in self.data:
            return PSTSettings()  # no PST settings: origin_info is not read at all
        accepted = self.accepted_origins(origin_info)
        if issuers and not accepted:
            raise self.fail(
                "pst_accepted_origins",
                "name the origins records must be redeemed for (or set origin_info)",
            )
        return PSTSettings(issuers, accepted)

    def issuer(self, entry: object, where: str) -> PSTIssuerConfig:
        entry = table(entry, where, PST_ISSUER_KEYS, "origin and jwks or jwks_file", self.fail)
        origin = entry.get("origin")
        if not isinstance(origin, str):
            raise self.fail(f"{where}.origin", "expected the issuer origin (https://host[:port])")
        try:
            origin = normalize_origin(origin)
        except DecodeError as e:
            raise self.fail(f"{where}.origin", str(e)) from None
        if "jwks" not in entry and "jwks_file" not in entry:
            raise self.fail(where, "expected jwks (a URL), jwks_file, or both")
        url = self.jwks_url(entry["jwks"], f"{where}.jwks") if "jwks" in entry else None
        keys: tuple[RecordKey, ...] = ()
        if "jwks_file" in entry:
            keys = self.jwks_file(entry["jwks_file"], f"{where}.jwks_file").keys
        return PSTIssuerConfig(
            origin=origin,
            jwks_url=url,
            keys=keys,
            labels=self.labels(entry.get("labels"), f"{where}.labels"),
            setting=f"{where}.jwks" if url is not None else f"{where}.jwks_file",
        )

    def jwks_url(self, value: object, setting: str) -> str:
        url, parts = fetch_url(value, setting, self.fail, development=self.development)
        if parts.path in ("", "/") and not parts.query:
            return f"{parts.scheme}://{parts.netloc}{JWKS_PATH}"
        return url

    def jwks_file(self, value: object, setting: str) -> RecordKeySet:
        _, data = read_limited(value, setting, self.base_dir, MAX_JWKS_LENGTH, self.fail)
        try:
            return RecordKeySet.from_bytes(data)
        except DecodeError as e:
            raise self.fail(setting, f"not a JWK Set of Ed25519 record keys: {e}") from None

    def labels(self, value: object, setting: str) -> frozenset[int] | None:
        if value is None:
            return None
        if (
            not isinstance(value, list | tuple)
            or not value
            or not all(type(v) is int and 0 <= v <= UINT32_MAX for v in value)
        ):
            raise self.fail(setting, "expected a non-empty list of key ids (0 to 4294967295)")
        return frozenset(value)

    def accepted_origins(self, origin_info: Sequence[str]) -> frozenset[str]:
        if "pst_accepted_origins" not in self.data:
            try:
                return frozenset(normalize_origin("https://" + name) for name in origin_info)
            except DecodeError as e:
                raise self.fail("origin_info", f"not usable as an https origin: {e}") from None
        value = self.data["pst_accepted_origins"]
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple):
            raise self.fail("pst_accepted_origins", "expected a list of origins")
        out: set[str] = set()
        for i, text in enumerate(value):
            if not isinstance(text, str):
                raise self.fail(f"pst_accepted_origins[{i}]", "expected an origin string")
            try:
                out.add(normalize_origin(text))
            except DecodeError as e:
                raise self.fail(f"pst_accepted_origins[{i}]", str(e)) from None
        return frozenset(out)


__all__ = [
    "PST_ISSUER_KEYS",
    "PST_SETTINGS_KEYS",
    "PSTIssuerConfig",
    "PSTSettings",
    "parse_pst_settings",
]

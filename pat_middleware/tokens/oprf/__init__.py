"""A self-contained VOPRF: RFC 9497 mode 0x01 (VOPRF), ciphersuite P384-SHA384.

Work in progress: :mod:`.p384` (the group), :mod:`.h2c` (RFC 9380 hashing) and :mod:`.keys`
(constant-time multiplication by secret scalars) so far.
This package imports nothing from pat-middleware but :mod:`pat_middleware.errors`.
"""

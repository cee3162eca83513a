"""The operator PIN: salted scrypt hashes, never the PIN itself.

A hash looks like ``scrypt$16384$8$1$<salt, base64>$<key, base64>``: the cost
parameters travel with it, so raising them later keeps old hashes valid.
Qt-free: ``kiosk --set-pin`` uses it from the shell, the lock from the window.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

# 16 MiB of memory and tens of milliseconds on a Raspberry Pi 4: too slow to try
# all 10^4..10^8 PINs quickly offline, fast enough for one tap of OK.
SCRYPT_N = 1 << 14
SCRYPT_R = 8
SCRYPT_P = 1
KEY_BYTES = 32
SALT_BYTES = 16
MIN_DIGITS = 4
MAX_DIGITS = 8
PREFIX = "scrypt"


def check_pin_format(pin: str) -> str | None:
    """Why ``pin`` is not acceptable as a new PIN, or ``None`` when it is."""
    if not pin.isdigit() or not pin.isascii():
        return "the PIN must be digits only"
    if not MIN_DIGITS <= len(pin) <= MAX_DIGITS:
        return f"the PIN must have {MIN_DIGITS} to {MAX_DIGITS} digits"
    return None


def _derive(pin: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        pin.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r, dklen=KEY_BYTES
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_pin(pin: str, salt: bytes | None = None) -> str:
    """A new salted hash of ``pin`` (a fresh random salt unless one is given)."""
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    key = _derive(pin, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"{PREFIX}${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def _parse(pin_hash: str) -> tuple[int, int, int, bytes, bytes] | None:
    parts = pin_hash.split("$")
    if len(parts) != 6 or parts[0] != PREFIX:
        return None
    try:
        n, r, p = (int(part) for part in parts[1:4])
        salt = base64.b64decode(parts[4], validate=True)
        key = base64.b64decode(parts[5], validate=True)
    except (ValueError, binascii.Error):
        return None
    # Bounds keep a hand-edited config from making a check take minutes or gigabytes.
    if not (2 <= n <= 1 << 20 and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16):
        return None
    if not salt or len(key) != KEY_BYTES:
        return None
    return n, r, p, salt, key


def is_pin_hash(text: str) -> bool:
    """Whether ``text`` is a hash this module can check against."""
    return _parse(text) is not None


def verify_pin(pin: str, pin_hash: str) -> bool:
    """Whether ``pin`` matches ``pin_hash`` (constant-time compare; False for a bad hash)."""
    parsed = _parse(pin_hash)
    if parsed is None:
        return False
    n, r, p, salt, key = parsed
    return hmac.compare_digest(_derive(pin, salt, n, r, p), key)

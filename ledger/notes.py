"""C2SP signed notes, tlog checkpoints and tlog proofs (Ed25519).

Byte-compatible with Go's golang.org/x/mod/sumdb/note: the same key strings, the
same signature lines and the same accept/reject decisions when opening a note,
so checkpoints we sign verify with Go tooling and witnesses, and vice versa.

Specs: https://c2sp.org/signed-note, https://c2sp.org/tlog-checkpoint,
https://c2sp.org/tlog-proof.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ledger import merkle

__all__ = [
    "ALG_ED25519",
    "TLOG_PROOF_HEADER",
    "Checkpoint",
    "CheckpointError",
    "Ed25519Signer",
    "Ed25519Verifier",
    "InvalidSignatureError",
    "KeyFormatError",
    "MalformedNoteError",
    "Note",
    "NoteError",
    "Signature",
    "Signer",
    "TlogProof",
    "TlogProofError",
    "UnverifiedNoteError",
    "Verifier",
    "format_tlog_proof",
    "format_verifier_key",
    "generate_signer",
    "is_valid_key_name",
    "key_id",
    "open_checkpoint",
    "open_note",
    "parse_signer_key",
    "parse_tlog_proof",
    "parse_verifier_key",
    "sign_checkpoint",
    "sign_note",
    "split_note",
]

ALG_ED25519 = 0x01
_SIG_PREFIX = "\u2014 "  # em dash + space starts every signature line
_MAX_SIGNATURES = 100  # Go's cap; the spec only demands at least 16
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_UINT64_LIMIT = 1 << 64
# Go's unicode.IsSpace, spelled out: Python's str.isspace also matches U+001C..U+001F,
# which Go accepts in key names.
_GO_SPACES = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


# --- Errors ---------------------------------------------------------------------------


class NoteError(ValueError):
    """Base class for signed-note failures."""


class KeyFormatError(NoteError):
    """A signer or verifier key string is malformed or inconsistent."""


class MalformedNoteError(NoteError):
    """The note does not follow the signed-note syntax (Go's errMalformedNote)."""


class InvalidSignatureError(NoteError):
    """A signature by a known key (name and key ID match) does not verify."""

    def __init__(self, name: str, key_id: int) -> None:
        super().__init__(f"invalid signature for key {name}+{key_id:08x}")
        self.name = name
        self.key_id = key_id


class UnverifiedNoteError(NoteError):
    """The note is well formed but no signature is from a known key."""

    def __init__(self, note: Note) -> None:
        names = ", ".join(sorted({s.name for s in note.unverified_sigs})) or "none"
        super().__init__(f"note has no verified signatures (unknown signers: {names})")
        self.note = note


class CheckpointError(ValueError):
    """Checkpoint text violates c2sp.org/tlog-checkpoint."""


class TlogProofError(ValueError):
    """A tlog-proof document is malformed or does not verify."""


# --- Keys -----------------------------------------------------------------------------


def _b64decode(s: str) -> bytes:
    """Standard padded base64, accepting exactly what Go's StdEncoding accepts.

    Go skips CR and LF inside base64 input; strict_mode rejects everything else Go
    rejects (bad characters, missing or excess padding).
    """
    try:
        return binascii.a2b_base64(s.replace("\r", "").replace("\n", ""), strict_mode=True)
    except (binascii.Error, ValueError) as exc:  # ValueError: non-ASCII input
        raise ValueError(f"invalid base64: {exc}") from None


def _b64encode(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def is_valid_key_name(name: str) -> bool:
    """Key names are non-empty valid UTF-8 without Unicode spaces or '+'."""
    if not name or "+" in name or any(c in _GO_SPACES for c in name):
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates are not UTF-8
        return False
    return True


def key_id(name: str, typed_key: bytes) -> int:
    """Key ID: SHA-256(name || 0x0A || type byte || public key)[:4], big-endian."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + typed_key).digest()
    return int.from_bytes(digest[:4], "big")


def _chop(s: str, sep: str) -> tuple[str, str]:
    before, _, after = s.partition(sep)
    return before, after


def _parse_key_id(hex8: str) -> int | None:
    # Exactly 8 hex digits: int(x, 16) alone would allow signs, "0x" and "_".
    return int(hex8, 16) if _HEX8.fullmatch(hex8) else None


def format_verifier_key(name: str, public_key: bytes) -> str:
    """Verifier key string ``name+hex8(keyid)+base64(0x01 || pubkey)``."""
    if not is_valid_key_name(name):
        raise KeyFormatError(f"invalid key name {name!r}")
    if len(public_key) != 32:
        raise KeyFormatError(f"Ed25519 public key must be 32 bytes, got {len(public_key)}")
    typed = bytes([ALG_ED25519]) + public_key
    return f"{name}+{key_id(name, typed):08x}+{_b64encode(typed)}"


class Verifier(Protocol):
    """Anything that can check note signatures for one (name, key ID)."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def verify(self, msg: bytes, sig: bytes) -> bool:
        """True iff ``sig`` (without the 4-byte key ID) is valid for ``msg``."""
        ...


class Signer(Protocol):
    """Anything that can produce note signatures for one (name, key ID)."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def sign(self, msg: bytes) -> bytes:
        """Raw signature over ``msg`` (the key ID is prepended by ``sign_note``)."""
        ...


@dataclass(frozen=True)
class Ed25519Verifier:
    """Ed25519 note verifier (signature type 0x01)."""

    name: str
    public_key: bytes
    key_id: int = field(init=False)

    def __post_init__(self) -> None:
        if not is_valid_key_name(self.name):
            raise KeyFormatError(f"invalid key name {self.name!r}")
        if len(self.public_key) != 32:
            raise KeyFormatError(f"Ed25519 public key must be 32 bytes, got {len(self.public_key)}")
        object.__setattr__(
            self, "key_id", key_id(self.name, bytes([ALG_ED25519]) + self.public_key)
        )

    @property
    def verifier_key(self) -> str:
        """The ``name+hex8+base64`` string that ``parse_verifier_key`` reads."""
        return format_verifier_key(self.name, self.public_key)

    def verify(self, msg: bytes, sig: bytes) -> bool:
        """Check a raw 64-byte Ed25519 signature over ``msg``."""
        if len(sig) != 64:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(sig, msg)
        except (InvalidSignature, ValueError):
            return False
        return True


class Ed25519Signer:
    """Ed25519 note signer. Its repr never shows the seed."""

    __slots__ = ("_key", "_key_id", "_name", "_public")

    def __init__(self, name: str, seed: bytes) -> None:
        if not is_valid_key_name(name):
            raise KeyFormatError(f"invalid key name {name!r}")
        if len(seed) != 32:
            raise KeyFormatError(f"Ed25519 seed must be 32 bytes, got {len(seed)}")
        self._name = name
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        self._public = self._key.public_key().public_bytes_raw()
        self._key_id = key_id(name, bytes([ALG_ED25519]) + self._public)

    @property
    def name(self) -> str:
        """Key name, as it appears in signature lines."""
        return self._name

    @property
    def key_id(self) -> int:
        """32-bit key ID, as it prefixes each signature."""
        return self._key_id

    @property
    def public_key(self) -> bytes:
        """Raw 32-byte Ed25519 public key."""
        return self._public

    def sign(self, msg: bytes) -> bytes:
        """Raw 64-byte Ed25519 signature over ``msg``."""
        return self._key.sign(msg)

    def verifier(self) -> Ed25519Verifier:
        """The matching verifier."""
        return Ed25519Verifier(self._name, self._public)

    def verifier_key(self) -> str:
        """Public ``name+hex8+base64`` key string."""
        return format_verifier_key(self._name, self._public)

    def signer_key(self) -> str:
        """Secret ``PRIVATE+KEY+name+hex8+base64(0x01 || seed)`` string, as Go writes it."""
        seed = self._key.private_bytes_raw()
        typed = _b64encode(bytes([ALG_ED25519]) + seed)
        return f"PRIVATE+KEY+{self._name}+{self._key_id:08x}+{typed}"

    def __repr__(self) -> str:
        return f"Ed25519Signer({self._name}+{self._key_id:08x})"


def generate_signer(name: str) -> Ed25519Signer:
    """New random Ed25519 signer; persist it with ``signer_key()``."""
    seed = Ed25519PrivateKey.generate().private_bytes_raw()
    return Ed25519Signer(name, seed)


def parse_verifier_key(vkey: str) -> Ed25519Verifier:
    """Parse ``name+hex8+base64(type || key)``, checking the key ID like Go's NewVerifier."""
    name, rest = _chop(vkey, "+")
    hex8, key64 = _chop(rest, "+")
    kid = _parse_key_id(hex8)
    if kid is None:
        raise KeyFormatError("malformed verifier key: key ID must be 8 hex digits")
    if not is_valid_key_name(name):
        raise KeyFormatError(f"malformed verifier key: invalid key name {name!r}")
    try:
        typed = _b64decode(key64)
    except ValueError as exc:
        raise KeyFormatError(f"malformed verifier key: {exc}") from None
    if not typed:
        raise KeyFormatError("malformed verifier key: empty key")
    if kid != key_id(name, typed):
        raise KeyFormatError(f"verifier key ID {hex8} does not match the name and key")
    if typed[0] != ALG_ED25519:
        raise KeyFormatError(f"unknown verifier key algorithm 0x{typed[0]:02x}")
    if len(typed) != 33:
        raise KeyFormatError(f"malformed verifier key: Ed25519 key has {len(typed) - 1} bytes")
    return Ed25519Verifier(name, typed[1:])


def parse_signer_key(skey: str) -> Ed25519Signer:
    """Parse Go's ``PRIVATE+KEY+name+hex8+base64(0x01 || seed)`` signer key string."""
    private, rest = _chop(skey, "+")
    key_word, rest = _chop(rest, "+")
    name, rest = _chop(rest, "+")
    hex8, key64 = _chop(rest, "+")
    if private != "PRIVATE" or key_word != "KEY":
        raise KeyFormatError("malformed signer key: must start with PRIVATE+KEY+")
    kid = _parse_key_id(hex8)
    if kid is None:
        raise KeyFormatError("malformed signer key: key ID must be 8 hex digits")
    if not is_valid_key_name(name):
        raise KeyFormatError(f"malformed signer key: invalid key name {name!r}")
    try:
        typed = _b64decode(key64)
    except ValueError as exc:
        raise KeyFormatError(f"malformed signer key: {exc}") from None
    if not typed:
        raise KeyFormatError("malformed signer key: empty key")
    if typed[0] != ALG_ED25519:
        raise KeyFormatError(f"unknown signer key algorithm 0x{typed[0]:02x}")
    if len(typed) != 33:
        raise KeyFormatError(f"malformed signer key: Ed25519 seed has {len(typed) - 1} bytes")
    signer = Ed25519Signer(name, typed[1:])
    # The ID hashes the public key, so it can only be checked after deriving it.
    if signer.key_id != kid:
        raise KeyFormatError(f"signer key ID {hex8} does not match the name and key")
    return signer


# --- Notes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Signature:
    """One signature line: key name, key ID and the base64 exactly as written."""

    name: str
    key_id: int
    base64: str

    def line(self) -> str:
        """The signature line, including its newline."""
        return f"{_SIG_PREFIX}{self.name} {self.base64}\n"


@dataclass(frozen=True)
class Note:
    """An opened note: the signed text plus verified and unknown-key signatures."""

    text: str
    sigs: tuple[Signature, ...]
    unverified_sigs: tuple[Signature, ...] = ()


def _check_chars(msg: str) -> None:
    for c in msg:
        if c < " " and c != "\n":
            raise MalformedNoteError(f"malformed note: control character {c!r}")


def _decode_message(msg: str | bytes) -> str:
    if isinstance(msg, bytes):
        try:
            return msg.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedNoteError("malformed note: not valid UTF-8") from None
    try:
        msg.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedNoteError("malformed note: not valid UTF-8") from None
    return msg


def _split(msg: str | bytes) -> tuple[str, str]:
    """(text, signature block) split at the last blank line, as Go's Open does."""
    s = _decode_message(msg)
    _check_chars(s)
    split = s.rfind("\n\n")
    if split < 0:
        raise MalformedNoteError("malformed note: no blank line before signatures")
    text, sigs = s[: split + 1], s[split + 2 :]
    if not sigs or not sigs.endswith("\n"):
        raise MalformedNoteError("malformed note: missing signature lines or final newline")
    return text, sigs


def _signature_lines(block: str) -> Iterator[tuple[Signature, bytes]]:
    """Parse signature lines lazily, so errors surface in the same order as Go's."""
    for count, line in enumerate(block[:-1].split("\n"), start=1):
        if count > _MAX_SIGNATURES:
            raise MalformedNoteError(f"malformed note: more than {_MAX_SIGNATURES} signatures")
        if not line.startswith(_SIG_PREFIX):
            raise MalformedNoteError(f"malformed note: not a signature line: {line[:40]!r}")
        name, b64 = _chop(line[len(_SIG_PREFIX) :], " ")
        try:
            raw = _b64decode(b64)
        except ValueError:
            raise MalformedNoteError(f"malformed note: bad signature base64 for {name!r}") from None
        if not is_valid_key_name(name) or not b64 or len(raw) < 5:
            raise MalformedNoteError(f"malformed note: bad signature line for {name!r}")
        yield Signature(name, int.from_bytes(raw[:4], "big"), b64), raw[4:]


def split_note(msg: str | bytes) -> tuple[str, list[Signature]]:
    """Syntax-check a signed note without verifying it: (text, all signatures)."""
    text, block = _split(msg)
    return text, [sig for sig, _ in _signature_lines(block)]


def _index(verifiers: Iterable[Verifier]) -> dict[tuple[str, int], list[Verifier]]:
    known: dict[tuple[str, int], list[Verifier]] = {}
    for v in verifiers:
        same = known.setdefault((v.name, v.key_id), [])
        # Unlike Go, tolerate the same key listed twice; only distinct keys are ambiguous.
        if not any(v == other for other in same):
            same.append(v)
    return known


def open_note(msg: str | bytes, verifiers: Iterable[Verifier]) -> Note:
    """Parse and verify a signed note against trusted ``verifiers``.

    As Go's note.Open: signatures whose (name, key ID) is unknown are kept in
    ``unverified_sigs`` (identical lines once); a known key's signature that fails
    raises ``InvalidSignatureError``; later signatures by an already-seen known key
    are ignored; at least one verified signature is required, else
    ``UnverifiedNoteError``. Syntax errors raise ``MalformedNoteError``.
    """
    text, block = _split(msg)
    known = _index(verifiers)
    payload = text.encode("utf-8")
    sigs: list[Signature] = []
    unverified: list[Signature] = []
    seen: set[tuple[str, int]] = set()
    seen_unknown: set[Signature] = set()
    for sig, raw in _signature_lines(block):
        ident = (sig.name, sig.key_id)
        candidates = known.get(ident)
        if not candidates:
            if sig not in seen_unknown:
                seen_unknown.add(sig)
                unverified.append(sig)
            continue
        if len(candidates) > 1:
            raise NoteError(f"ambiguous verifiers for key {sig.name}+{sig.key_id:08x}")
        if ident in seen:
            continue
        seen.add(ident)
        if not candidates[0].verify(payload, raw):
            raise InvalidSignatureError(sig.name, sig.key_id)
        sigs.append(sig)
    note = Note(text, tuple(sigs), tuple(unverified))
    if not sigs:
        raise UnverifiedNoteError(note)
    return note


def sign_note(text: str, signers: Iterable[Signer], *, existing: Sequence[Signature] = ()) -> str:
    """Sign ``text`` (which must end in a newline) with each signer, in order.

    ``existing`` signature lines (e.g. from ``open_note``) are appended after the
    new ones unless a signer has the same name and key ID, like Go's note.Sign;
    that is how a witness adds a cosignature to a log's checkpoint.
    """
    if not text.endswith("\n"):
        raise MalformedNoteError("note text must end in a newline")
    # Go would sign such text, but no verifier could open the result.
    _check_chars(_decode_message(text))
    payload = text.encode("utf-8")
    lines: list[str] = []
    have: set[tuple[str, int]] = set()
    for s in signers:
        if not is_valid_key_name(s.name):
            raise NoteError(f"invalid signer name {s.name!r}")
        have.add((s.name, s.key_id))
        raw = s.key_id.to_bytes(4, "big") + s.sign(payload)
        lines.append(Signature(s.name, s.key_id, _b64encode(raw)).line())
    for sig in existing:
        if not is_valid_key_name(sig.name):
            raise MalformedNoteError(f"invalid signature name {sig.name!r}")
        if (sig.name, sig.key_id) in have:
            continue
        try:
            raw = _b64decode(sig.base64)
        except ValueError:
            raise MalformedNoteError(f"bad base64 in existing signature by {sig.name}") from None
        if len(raw) < 5 or int.from_bytes(raw[:4], "big") != sig.key_id:
            raise MalformedNoteError(f"existing signature by {sig.name} has a mismatched key ID")
        lines.append(sig.line())
    if not lines:
        raise NoteError("a signed note needs at least one signature")
    return text + "\n" + "".join(lines)


# --- Checkpoints ----------------------------------------------------------------------


def _parse_uint64(s: str, what: str, error: type[ValueError]) -> int:
    if not _DECIMAL.fullmatch(s):
        raise error(f"{what} {s!r} is not a decimal without leading zeros")
    n = int(s)
    if n >= _UINT64_LIMIT:
        raise error(f"{what} {s} does not fit in 64 bits")
    return n


@dataclass(frozen=True)
class Checkpoint:
    """A c2sp.org/tlog-checkpoint note body."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise CheckpointError("origin must be a non-empty single line")
        if not 0 <= self.size < _UINT64_LIMIT:
            raise CheckpointError(f"tree size {self.size} out of range")
        for ext in self.extensions:
            if not ext or "\n" in ext:
                raise CheckpointError("extension lines must be non-empty single lines")

    def to_text(self) -> str:
        """Note text: origin, size, base64 root, extension lines, each newline-ended."""
        lines = [self.origin, str(self.size), _b64encode(self.root_hash), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str, *, hash_size: int | None = merkle.HASH_SIZE) -> Checkpoint:
        """Strict parse of checkpoint note text (``Note.text``, not the signed note).

        ``hash_size=None`` skips the root length check, for non-SHA-256 logs.
        """
        if not text.endswith("\n"):
            raise CheckpointError("checkpoint text must end in a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError("checkpoint needs origin, size and root hash lines")
        origin, size_s, root_s, *extensions = lines
        if not origin:
            raise CheckpointError("checkpoint origin is empty")
        size = _parse_uint64(size_s, "tree size", CheckpointError)
        try:
            root = _b64decode(root_s)
        except ValueError as exc:
            raise CheckpointError(f"root hash: {exc}") from None
        if hash_size is not None and len(root) != hash_size:
            raise CheckpointError(f"root hash has {len(root)} bytes, want {hash_size}")
        if any(not ext for ext in extensions):
            raise CheckpointError("checkpoint extension lines must be non-empty")
        return cls(origin, size, root, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signers: Iterable[Signer]) -> str:
    """Signed note carrying ``checkpoint``."""
    return sign_note(checkpoint.to_text(), signers)


def open_checkpoint(
    msg: str | bytes, verifiers: Iterable[Verifier], *, origin: str | None = None
) -> tuple[Checkpoint, Note]:
    """Verify a signed checkpoint and parse it, optionally pinning its origin."""
    note = open_note(msg, verifiers)
    checkpoint = Checkpoint.parse(note.text)
    if origin is not None and checkpoint.origin != origin:
        raise CheckpointError(f"checkpoint origin {checkpoint.origin!r}, expected {origin!r}")
    return checkpoint, note


# --- tlog-proof -----------------------------------------------------------------------

TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"


@dataclass(frozen=True)
class TlogProof:
    """A c2sp.org/tlog-proof: index, inclusion proof and signed checkpoint."""

    index: int
    hashes: tuple[bytes, ...]
    checkpoint: str  # the signed checkpoint note, verbatim
    extra: bytes | None = None  # opaque and unauthenticated: never trust it

    def to_text(self) -> str:
        """Serialise; same as ``format_tlog_proof``."""
        return format_tlog_proof(self.index, self.hashes, self.checkpoint, extra=self.extra)

    def verify(
        self, leaf_hash: bytes, verifiers: Iterable[Verifier], *, origin: str
    ) -> tuple[Checkpoint, Note]:
        """Check the checkpoint signatures and origin, then the leaf's inclusion.

        Raises ``NoteError``, ``CheckpointError`` or ``merkle.ProofError``.
        """
        checkpoint, note = open_checkpoint(self.checkpoint, verifiers, origin=origin)
        merkle.verify_inclusion(
            self.index, checkpoint.size, leaf_hash, self.hashes, checkpoint.root_hash
        )
        return checkpoint, note


def format_tlog_proof(
    index: int,
    proof_hashes: Sequence[bytes],
    signed_checkpoint: str,
    *,
    extra: bytes | None = None,
) -> str:
    """Render a tlog-proof document around an already signed checkpoint note."""
    if not 0 <= index < _UINT64_LIMIT:
        raise TlogProofError(f"index {index} out of range")
    for i, h in enumerate(proof_hashes):
        if len(h) != merkle.HASH_SIZE:
            raise TlogProofError(f"proof hash {i} has {len(h)} bytes, want {merkle.HASH_SIZE}")
    try:
        split_note(signed_checkpoint)  # refuse to embed something that is not a signed note
    except NoteError as exc:
        raise TlogProofError(f"signed checkpoint: {exc}") from None
    lines = [TLOG_PROOF_HEADER]
    if extra is not None:
        lines.append(f"extra {_b64encode(extra)}")
    lines.append(f"index {index}")
    lines.extend(_b64encode(h) for h in proof_hashes)
    return "".join(line + "\n" for line in lines) + "\n" + signed_checkpoint


def parse_tlog_proof(text: str) -> TlogProof:
    """Strict parse of a tlog-proof; the embedded checkpoint is syntax-checked only.

    Call ``TlogProof.verify`` to check signatures and inclusion.
    """
    # Header lines are all non-empty, so the first blank line ends them.
    head, sep, checkpoint = text.partition("\n\n")
    if not sep:
        raise TlogProofError("tlog-proof has no blank line before the checkpoint")
    lines = head.split("\n")
    if lines[0] != TLOG_PROOF_HEADER:
        raise TlogProofError(f"tlog-proof must start with {TLOG_PROOF_HEADER!r}")
    pos = 1
    extra: bytes | None = None
    if pos < len(lines) and lines[pos].startswith("extra "):
        try:
            extra = _b64decode(lines[pos][len("extra ") :])
        except ValueError as exc:
            raise TlogProofError(f"extra data: {exc}") from None
        pos += 1
    if pos >= len(lines) or not lines[pos].startswith("index "):
        raise TlogProofError("tlog-proof is missing its 'index N' line")
    index = _parse_uint64(lines[pos][len("index ") :], "index", TlogProofError)
    hashes: list[bytes] = []
    for i, line in enumerate(lines[pos + 1 :]):
        try:
            h = _b64decode(line)
        except ValueError as exc:
            raise TlogProofError(f"proof hash {i}: {exc}") from None
        if len(h) != merkle.HASH_SIZE:
            raise TlogProofError(f"proof hash {i} has {len(h)} bytes, want {merkle.HASH_SIZE}")
        hashes.append(h)
    try:
        split_note(checkpoint)
    except NoteError as exc:
        raise TlogProofError(f"embedded checkpoint: {exc}") from None
    return TlogProof(index, tuple(hashes), checkpoint, extra)

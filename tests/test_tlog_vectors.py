"""Known-answer and probe vectors for ledger.merkle and ledger.notes.

Every vector in shared/reference/tlog-vectors is loaded: valid cases must pass and
every wantErr / malformed / bad-key case must be rejected.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from ledger import merkle, notes
from ledger.merkle import ProofError

# A committed copy, so every clone (CI included) runs every vector.
VECTORS = Path(__file__).resolve().parent / "data" / "tlog-vectors"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "reference" / "tlog-vectors"


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"no shared reference copy at {SHARED}")
def test_committed_vectors_equal_the_shared_reference() -> None:
    shared = sorted(p.name for p in SHARED.glob("*.json"))
    assert shared == sorted(p.name for p in VECTORS.glob("*.json"))
    for name in shared:
        assert (SHARED / name).read_bytes() == (VECTORS / name).read_bytes(), name


def _load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


def _b64(s: str) -> bytes:
    return base64.b64decode(s, validate=True)


def _probe_id(probe: dict[str, Any]) -> str:
    return str(probe["file"]).removeprefix("testdata/").removesuffix(".json")


def _store(leaves: list[bytes]) -> merkle.PendingNodes:
    """In-memory tree: a PendingNodes batch on top of an empty base."""

    def empty(level: int, index: int) -> bytes:
        raise KeyError((level, index))

    tree = merkle.PendingNodes(empty, 0)
    tree.extend(merkle.leaf_hash(d) for d in leaves)
    return tree


def test_vector_files_present() -> None:
    names = {p.name for p in VECTORS.glob("*.json")}
    assert names >= {
        "c2sp_examples.json",
        "formats_checkpoint_cases.json",
        "go_sumdb_note.json",
        "merkle_consistency_probes.json",
        "merkle_inclusion_probes.json",
        "real_checkpoints.json",
        "rfc6962_reference_tree.json",
    }


# --- rfc6962_reference_tree.json ------------------------------------------------------

REF = _load("rfc6962_reference_tree.json")
REF_LEAVES = [bytes.fromhex(h) for h in REF["leaves_hex"]]


@pytest.mark.parametrize("case", REF["hasher_known_answers"], ids=lambda c: c["desc"])
def test_hasher_known_answers(case: dict[str, Any]) -> None:
    want = bytes.fromhex(case["want_hex"])
    if case["fn"] == "empty_root":
        assert want == merkle.EMPTY_ROOT
    elif case["fn"] == "leaf_hash":
        assert merkle.leaf_hash(bytes.fromhex(case["data_hex"])) == want
    elif case["fn"] == "node_hash":
        left, right = bytes.fromhex(case["left_hex"]), bytes.fromhex(case["right_hex"])
        assert merkle.node_hash(left, right) == want
    else:
        pytest.fail(f"unknown hasher fn {case['fn']!r}")


def test_reference_node_hashes() -> None:
    tree = _store(REF_LEAVES)
    for level, row in enumerate(REF["node_hashes_hex_by_level"]):
        for index, want in enumerate(row):
            assert tree.get(level, index).hex() == want, (level, index)
    # Exactly the perfect subtrees are emitted, no more.
    assert len(tree.new_nodes()) == sum(len(r) for r in REF["node_hashes_hex_by_level"])


@pytest.mark.parametrize("size", range(len(REF["roots_hex_by_size"])), ids=lambda n: f"size{n}")
def test_reference_roots(size: int) -> None:
    want = bytes.fromhex(REF["roots_hex_by_size"][size])
    tree = _store(REF_LEAVES[:size])
    assert merkle.root_at(tree.get, size) == want
    assert tree.root() == want
    stream = merkle.StreamingRoot()
    for leaf in REF_LEAVES[:size]:
        stream.append(merkle.leaf_hash(leaf))
    assert stream.size == size
    assert stream.root() == want
    assert merkle.StreamingRoot.from_frontier(stream.frontier()).root() == want
    assert merkle.StreamingRoot.from_nodes(tree.get, size).root() == want


@pytest.mark.parametrize(
    "case", REF["inclusion_proofs"], ids=lambda c: f"leaf{c['index']}-size{c['tree_size']}"
)
def test_reference_inclusion_proofs(case: dict[str, Any]) -> None:
    index, size = case["index"], case["tree_size"]
    want = [bytes.fromhex(h) for h in case["proof_hex"]]
    tree = _store(REF_LEAVES)
    assert merkle.inclusion_proof(tree.get, index, size) == want
    root = bytes.fromhex(REF["roots_hex_by_size"][size])
    merkle.verify_inclusion(index, size, merkle.leaf_hash(REF_LEAVES[index]), want, root)


@pytest.mark.parametrize(
    "case", REF["consistency_proofs"], ids=lambda c: f"{c['size1']}-to-{c['size2']}"
)
def test_reference_consistency_proofs(case: dict[str, Any]) -> None:
    size1, size2 = case["size1"], case["size2"]
    want = [bytes.fromhex(h) for h in case["proof_hex"]]
    tree = _store(REF_LEAVES)
    assert merkle.consistency_proof(tree.get, size1, size2) == want
    root1 = bytes.fromhex(REF["roots_hex_by_size"][size1])
    root2 = bytes.fromhex(REF["roots_hex_by_size"][size2])
    merkle.verify_consistency(size1, size2, root1, root2, want)


# --- merkle_inclusion_probes.json / merkle_consistency_probes.json --------------------

INCLUSION = _load("merkle_inclusion_probes.json")["probes"]
CONSISTENCY = _load("merkle_consistency_probes.json")["probes"]


def test_probe_counts() -> None:
    assert sum(p["wantErr"] for p in INCLUSION) == 92
    assert sum(p["wantErr"] for p in CONSISTENCY) == 92


@pytest.mark.parametrize("probe", INCLUSION, ids=_probe_id)
def test_inclusion_probe(probe: dict[str, Any]) -> None:
    args = (
        probe["leafIdx"],
        probe["treeSize"],
        _b64(probe["leafHash"]),
        [_b64(h) for h in probe["proof"] or []],
        _b64(probe["root"]),
    )
    if probe["wantErr"]:
        with pytest.raises(ProofError):
            merkle.verify_inclusion(*args)
    else:
        merkle.verify_inclusion(*args)


@pytest.mark.parametrize("probe", CONSISTENCY, ids=_probe_id)
def test_consistency_probe(probe: dict[str, Any]) -> None:
    args = (
        probe["size1"],
        probe["size2"],
        _b64(probe["root1"]),
        _b64(probe["root2"]),
        [_b64(h) for h in probe["proof"] or []],
    )
    if probe["wantErr"]:
        with pytest.raises(ProofError):
            merkle.verify_consistency(*args)
    else:
        merkle.verify_consistency(*args)


# --- go_sumdb_note.json ---------------------------------------------------------------

GO = _load("go_sumdb_note.json")
PETER = GO["keys"]["PeterNeumann"]
ENOCH = GO["keys"]["EnochRoot"]


def test_go_verifier_keys_parse() -> None:
    for name, key in GO["keys"].items():
        v = notes.parse_verifier_key(key["vkey"])
        assert v.name == name
        assert f"{v.key_id:08x}" == key["key_id_hex"]
        assert v.verifier_key == key["vkey"]


def test_go_signer_key_roundtrip() -> None:
    signer = notes.parse_signer_key(PETER["skey"])
    assert signer.name == "PeterNeumann"
    assert f"{signer.key_id:08x}" == PETER["key_id_hex"]
    assert signer.verifier_key() == PETER["vkey"]
    assert signer.signer_key() == PETER["skey"]
    assert "PRIVATE" not in repr(signer)


def test_go_enoch_key_from_zero_seed() -> None:
    signer = notes.Ed25519Signer("EnochRoot", bytes.fromhex(ENOCH["ed25519_seed_hex"]))
    assert signer.verifier_key() == ENOCH["vkey"]
    assert notes.parse_signer_key(signer.signer_key()).verifier_key() == ENOCH["vkey"]


@pytest.mark.parametrize("name", sorted(GO["signatures"]))
def test_go_signatures_are_reproduced(name: str) -> None:
    # Ed25519 is deterministic, so our signature line must equal Go's byte for byte.
    if name == "PeterNeumann":
        signer = notes.parse_signer_key(PETER["skey"])
    else:
        signer = notes.Ed25519Signer(name, bytes.fromhex(GO["keys"][name]["ed25519_seed_hex"]))
    signed = notes.sign_note(GO["note_text"], [signer])
    assert signed == f"{GO['note_text']}\n\u2014 {name} {GO['signatures'][name]}\n"


def test_go_signed_note_exact_and_opens() -> None:
    peter = notes.parse_signer_key(PETER["skey"])
    assert notes.sign_note(GO["note_text"], [peter]) == GO["signed_note_peter"]
    note = notes.open_note(GO["signed_note_peter"], [notes.parse_verifier_key(PETER["vkey"])])
    assert note.text == GO["note_text"]
    assert [(s.name, s.key_id) for s in note.sigs] == [
        ("PeterNeumann", int(PETER["key_id_hex"], 16))
    ]
    assert note.unverified_sigs == ()


def test_go_two_signers_and_cosigning() -> None:
    peter = notes.parse_signer_key(PETER["skey"])
    enoch = notes.Ed25519Signer("EnochRoot", bytes.fromhex(ENOCH["ed25519_seed_hex"]))
    both = notes.sign_note(GO["note_text"], [peter, enoch])
    assert both == (
        GO["note_text"] + "\n"
        f"\u2014 PeterNeumann {GO['signatures']['PeterNeumann']}\n"
        f"\u2014 EnochRoot {GO['signatures']['EnochRoot']}\n"
    )
    # Enoch cosigns Peter's note: existing lines are kept after the new one.
    opened = notes.open_note(GO["signed_note_peter"], [peter.verifier()])
    cosigned = notes.sign_note(opened.text, [enoch], existing=opened.sigs)
    note = notes.open_note(cosigned, [peter.verifier(), enoch.verifier()])
    assert {s.name for s in note.sigs} == {"PeterNeumann", "EnochRoot"}
    # Only Enoch known: Peter's signature is unverified but kept.
    only_enoch = notes.open_note(both, [enoch.verifier()])
    assert [s.name for s in only_enoch.sigs] == ["EnochRoot"]
    assert [s.name for s in only_enoch.unverified_sigs] == ["PeterNeumann"]


@pytest.mark.parametrize("vkey", GO["bad_vkeys"], ids=["wrong-key-length", "unknown-algorithm"])
def test_go_bad_verifier_keys(vkey: str) -> None:
    with pytest.raises(notes.KeyFormatError):
        notes.parse_verifier_key(vkey)


def test_go_verifier_key_substrings_and_increments_rejected() -> None:
    # As Go's TestNewVerifier: every proper substring and every single-byte bump fails.
    good = PETER["vkey"]
    bad = {good[i:j] for i in range(len(good)) for j in range(i + 1, len(good) + 1)} - {good}
    bad |= {good[:i] + chr(ord(good[i]) + 1) + good[i + 1 :] for i in range(len(good))}
    for vkey in sorted(bad):
        with pytest.raises(notes.KeyFormatError):
            notes.parse_verifier_key(vkey)
    assert len(bad) > 2000


def test_go_signer_key_substrings_and_increments_rejected() -> None:
    good = PETER["skey"]
    bad = {good[:i] for i in range(len(good))} | {good[i:] for i in range(1, len(good))}
    bad |= {good[:i] + chr(ord(good[i]) + 1) + good[i + 1 :] for i in range(len(good))}
    for skey in sorted(bad):
        with pytest.raises(notes.KeyFormatError):
            notes.parse_signer_key(skey)


MALFORMED: list[str | bytes] = [*GO["malformed_notes"], b"\xff" + GO["signed_note_peter"].encode()]


@pytest.mark.parametrize("msg", MALFORMED, ids=lambda m: f"len{len(m)}-{m[:1]!r}")
def test_go_malformed_notes(msg: str | bytes) -> None:
    verifiers = [notes.parse_verifier_key(PETER["vkey"])]
    with pytest.raises(notes.MalformedNoteError):
        notes.open_note(msg, verifiers)
    with pytest.raises(notes.MalformedNoteError):
        notes.split_note(msg)


def test_go_open_failures() -> None:
    peter_v = notes.parse_verifier_key(PETER["vkey"])
    enoch_v = notes.parse_verifier_key(ENOCH["vkey"])
    signed = GO["signed_note_peter"]
    # Unknown key only: well formed but unverified; the unknown signature is reported.
    with pytest.raises(notes.UnverifiedNoteError) as unverified:
        notes.open_note(signed, [enoch_v])
    assert [s.name for s in unverified.value.note.unverified_sigs] == ["PeterNeumann"]
    with pytest.raises(notes.UnverifiedNoteError):
        notes.open_note(signed, [])
    # Known key, altered text: the signature must fail, not be skipped.
    with pytest.raises(notes.InvalidSignatureError):
        notes.open_note(signed.replace("answer", "Answer"), [peter_v])
    # Same name, other key ID: treated as an unknown key.
    other = notes.generate_signer("PeterNeumann").verifier()
    with pytest.raises(notes.UnverifiedNoteError):
        notes.open_note(signed, [other])
    # Text must end in a newline to be signed.
    with pytest.raises(notes.MalformedNoteError):
        notes.sign_note("no newline", [notes.parse_signer_key(PETER["skey"])])


def test_go_sumdb_tree_golden() -> None:
    golden = GO["sumdb_tree_golden"]
    root = merkle.leaf_hash(golden["leaf_data"].encode())
    cp = notes.Checkpoint("go.sum database tree", golden["tree_size"], root)
    assert cp.to_text() == golden["text"]
    assert notes.Checkpoint.parse(golden["text"]) == cp


# --- c2sp_examples.json ---------------------------------------------------------------

C2SP = _load("c2sp_examples.json")


def test_c2sp_signed_note_example_verifies() -> None:
    ex = C2SP["signed_note_example"]
    assert ex["expect"] == "verifies"
    verifier = notes.parse_verifier_key(ex["vkey"])
    note = notes.open_note(ex["note"], [verifier])
    assert note.text == "This is an example message.\n"
    assert [s.name for s in note.sigs] == ["example.com/foo"]


def test_c2sp_checkpoint_example_parses() -> None:
    ex = C2SP["checkpoint_example"]
    text, sigs = notes.split_note(ex["note"])
    cp = notes.Checkpoint.parse(text)
    assert (cp.origin, cp.size, cp.root_hash) == (
        ex["origin"],
        ex["tree_size"],
        _b64(ex["root_b64"]),
    )
    assert cp.to_text() == text
    assert [s.name for s in sigs] == [ex["origin"]]
    # No key is published for it, so opening with any other key cannot verify it.
    with pytest.raises(notes.UnverifiedNoteError):
        notes.open_note(ex["note"], [notes.parse_verifier_key(PETER["vkey"])])


# --- formats_checkpoint_cases.json ----------------------------------------------------

FORMATS = _load("formats_checkpoint_cases.json")["cases"]


@pytest.mark.parametrize("case", FORMATS, ids=lambda c: c["desc"])
def test_formats_checkpoint_case(case: dict[str, Any]) -> None:
    text = case["text"]
    if case["wantErr"]:
        with pytest.raises(notes.CheckpointError):
            notes.Checkpoint.parse(text, hash_size=None)
        return
    # These roots are not 32 bytes, so strict C2SP parsing rejects them all...
    with pytest.raises(notes.CheckpointError, match="root hash has"):
        notes.Checkpoint.parse(text)
    rest: str = case.get("rest", "")
    if "\n\n" in "\n" + rest:
        # ...and C2SP forbids empty extension lines, which formats returns as "rest".
        with pytest.raises(notes.CheckpointError, match="extension lines"):
            notes.Checkpoint.parse(text, hash_size=None)
        return
    cp = notes.Checkpoint.parse(text, hash_size=None)
    assert cp.origin == case["origin"]
    assert cp.size == case["size"]
    assert cp.root_hash == case["hash_utf8"].encode()
    assert "".join(e + "\n" for e in cp.extensions) == rest
    assert cp.to_text() == text


# --- real_checkpoints.json ------------------------------------------------------------

REAL = _load("real_checkpoints.json")
REAL_VERIFIERS = [
    notes.parse_verifier_key(REAL["keys"]["sum.golang.org"]["vkey"]),
    *(notes.parse_verifier_key(k) for k in REAL["keys"]["witnesses"]["vkeys"]),
]


@pytest.mark.parametrize("case", REAL["checkpoints"], ids=lambda c: c["source"]["path"][-12:])
def test_real_checkpoint(case: dict[str, Any]) -> None:
    cp, note = notes.open_checkpoint(case["note"], REAL_VERIFIERS, origin=case["origin"])
    assert cp.size == case["size"]
    assert sorted(s.name for s in note.sigs) == sorted(case["expect_verified"])
    assert sorted({s.name for s in note.unverified_sigs}) == sorted(case["expect_unknown"])
    # Any single known key suffices; a tampered size breaks the log's signature.
    sumdb = REAL_VERIFIERS[:1]
    assert [s.name for s in notes.open_note(case["note"], sumdb).sigs] == ["sum.golang.org"]
    tampered = case["note"].replace(f"\n{case['size']}\n", f"\n{case['size'] + 1}\n")
    with pytest.raises(notes.InvalidSignatureError):
        notes.open_note(tampered, sumdb)


def test_real_c2sp_example_observation() -> None:
    obs = REAL["c2sp_example_observation"]
    sumdb = REAL_VERIFIERS[:1]
    signed = obs["text_that_verifies"] + f"\n\u2014 sum.golang.org {obs['signature_b64']}\n"
    cp, _ = notes.open_checkpoint(signed, sumdb, origin="go.sum database tree")
    assert cp.size == C2SP["checkpoint_example"]["tree_size"]
    # The renamed example as published does not verify under that key.
    renamed = signed.replace("go.sum database tree\n", "example.com/behind-the-sofa\n")
    with pytest.raises(notes.InvalidSignatureError):
        notes.open_note(renamed, sumdb)


# --- tlog-proof built from the reference tree -----------------------------------------


def test_tlog_proof_roundtrip_on_reference_tree() -> None:
    tree = _store(REF_LEAVES)
    signer = notes.generate_signer("example.com/ledger")
    cp = notes.Checkpoint("example.com/ledger", 8, tree.root())
    signed = notes.sign_checkpoint(cp, [signer])
    proof = merkle.inclusion_proof(tree.get, 5, 8)
    text = notes.format_tlog_proof(5, proof, signed, extra=b"context")
    assert text.startswith("c2sp.org/tlog-proof@v1\nextra Y29udGV4dA==\nindex 5\n")
    parsed = notes.parse_tlog_proof(text)
    assert parsed == notes.TlogProof(5, tuple(proof), signed, b"context")
    assert parsed.to_text() == text
    leaf = merkle.leaf_hash(REF_LEAVES[5])
    got, _ = parsed.verify(leaf, [signer.verifier()], origin="example.com/ledger")
    assert got == cp
    with pytest.raises(ProofError):
        parsed.verify(merkle.leaf_hash(REF_LEAVES[4]), [signer.verifier()], origin=cp.origin)
    with pytest.raises(notes.CheckpointError):
        parsed.verify(leaf, [signer.verifier()], origin="example.com/other")


def _signed_ref_checkpoint() -> str:
    signer = notes.Ed25519Signer("example.com/ledger", bytes(32))
    root = bytes.fromhex(REF["roots_hex_by_size"][8])
    return notes.sign_checkpoint(notes.Checkpoint("example.com/ledger", 8, root), [signer])


_H = base64.b64encode(bytes(32)).decode()


@pytest.mark.parametrize(
    "head",
    [
        f"c2sp.org/tlog-proof@v2\nindex 5\n{_H}\n",
        f"index 5\n{_H}\n",
        f"c2sp.org/tlog-proof@v1\nindex 05\n{_H}\n",
        f"c2sp.org/tlog-proof@v1\nindex -5\n{_H}\n",
        f"c2sp.org/tlog-proof@v1\nindex {1 << 64}\n",
        f"c2sp.org/tlog-proof@v1\n{_H}\nindex 5\n",
        f"c2sp.org/tlog-proof@v1\nindex 5\n{_H[:-4]}\n",
        f"c2sp.org/tlog-proof@v1\nextra !!\nindex 5\n{_H}\n",
        f"c2sp.org/tlog-proof@v1\nindex 5\nextra AA==\n{_H}\n",
    ],
    ids=[
        "wrong-version",
        "no-header",
        "leading-zero",
        "negative",
        "index-overflow",
        "index-after-hash",
        "short-hash",
        "bad-extra",
        "extra-after-index",
    ],
)
def test_tlog_proof_rejects(head: str) -> None:
    with pytest.raises(notes.TlogProofError):
        notes.parse_tlog_proof(head + "\n" + _signed_ref_checkpoint())


def test_tlog_proof_rejects_bad_checkpoint_block() -> None:
    head = f"c2sp.org/tlog-proof@v1\nindex 0\n{_H}\n"
    with pytest.raises(notes.TlogProofError):
        notes.parse_tlog_proof(head)  # no blank line, no checkpoint
    with pytest.raises(notes.TlogProofError):
        notes.parse_tlog_proof(head + "\nexample.com/ledger\n8\n" + _H + "\n")  # unsigned
    assert notes.parse_tlog_proof(head + "\n" + _signed_ref_checkpoint()).index == 0

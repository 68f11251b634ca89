#!/usr/bin/env python3
"""Independent checker of the modelseal test vectors.

Written only from the normative text of spec/manifest.md and spec/statement.md,
without reference to the Rust implementation, so that the vectors are checked
against the spec rather than against the code that produced them.

  manifest/*.json          recompute every file hash, the sorted manifest, each
                           leaf (derive_key, LEAF context) and the Merkle root.
  manifest-invalid/*.json  apply the path rules (manifest.md §3) and manifest
                           rules (§5); the outcome must equal `expect`.
  bundle/*.json            run the verification steps of statement.md §5 in order
                           against the vector's files; the outcome kind must
                           equal `expect`.
  keyless-binding/*.json   the keyless binding digest of a root (sigstore.md §4).
  stamps/*.json            incremental.md §2 and §3 steps 4-5: whether a stamp file is
                           used, and which walked files keep the old digest.

Usage: python3 check_vectors.py [VECTORS_DIR]   (needs: blake3, cryptography)
"""
import base64
import hashlib
import json
import sys
from pathlib import Path

import blake3
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

LEAF_CONTEXT = "modelseal.dev 2026-11 manifest leaf v1"
NODE_CONTEXT = "modelseal.dev 2026-11 manifest node v1"
VCS_NAMES = {".git", ".hg", ".svn", ".bzr", ".jj"}
MEDIA_TYPES = {"application/vnd.dev.sigstore.bundle.v0.3+json",
               "application/vnd.dev.sigstore.bundle+json;version=0.3"}
PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://modelseal.dev/manifest/v1"
PREDICATE_KEYS = {"kind", "ignorePaths", "allowSymlinks", "files"}
OPTIONAL_PREDICATE_KEYS = {"scope"}
ENTRY_KEYS = {"path", "size", "blake3"}
HEX = set("0123456789abcdef")


class Refused(Exception):
    """A verification outcome other than ok; `kind` is the statement.md §5 name."""
    def __init__(self, kind, detail=""):
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind


def need(cond, kind, detail=""):
    if not cond:
        raise Refused(kind, detail)


# ---- manifest.md -----------------------------------------------------------

def file_hash(data):  # §4: plain BLAKE3, as b3sum prints it
    return blake3.blake3(data).hexdigest()


def leaf(path, size, hash_hex):  # §6
    p = path.encode("utf-8")
    msg = len(p).to_bytes(8, "little") + p + size.to_bytes(8, "little") + bytes.fromhex(hash_hex)
    return blake3.blake3(msg, derive_key_context=LEAF_CONTEXT).digest()


def mth(leaves):  # §6: RFC 6962 shape, k = largest power of two < n
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return blake3.blake3(mth(leaves[:k]) + mth(leaves[k:]), derive_key_context=NODE_CONTEXT).digest()


def path_problem(p):  # §3; returns None when p is a valid manifest path
    try:
        b = p.encode("utf-8")
    except (AttributeError, UnicodeEncodeError):
        return f"path {p!r} is not a UTF-8 string"
    comps = p.split("/")
    for broken, why in [(not b, "is empty"), (len(b) > 4096, f"is {len(b)} bytes long"),
                        (p.startswith("/"), "is absolute"),
                        ("\0" in p or "\\" in p, "has a forbidden character"),
                        (".." in comps, "climbs out with .."),
                        ("" in comps or "." in comps, "is not normalized")]:
        if broken:
            return f"path {p!r} {why}"
    return None


def manifest_problem(paths):  # §5; returns None when the order/set rules hold
    if not paths:
        return "manifest is empty"
    keys = [p.encode("utf-8") for p in paths]
    for a, b in zip(keys, keys[1:]):
        if a == b:
            return f"duplicate path {a!r}"
        if a > b:
            return f"unsorted: {a!r} before {b!r}"
    present = set(keys)
    for k in keys:
        parts = k.split(b"/")
        for i in range(1, len(parts)):
            if b"/".join(parts[:i]) in present:
                return f"file/directory clash: {b'/'.join(parts[:i])!r} and {k!r}"
    return None


def check_entries(entries):
    """Steps 10 (entry shape, §3 paths) and 11 (§5 rules); returns the root hex."""
    need(isinstance(entries, list), "malformed-predicate", "files is not a list")
    for e in entries:
        need(isinstance(e, dict) and set(e) == ENTRY_KEYS, "malformed-predicate", f"bad entry {e!r}")
        prob = path_problem(e["path"])
        need(prob is None, "malformed-predicate", prob)
        s, h = e["size"], e["blake3"]
        need(type(s) is int and 0 <= s < 2**64, "malformed-predicate", f"bad size {s!r}")
        need(isinstance(h, str) and len(h) == 64 and set(h) <= HEX, "malformed-predicate", f"bad blake3 {h!r}")
    prob = manifest_problem([e["path"] for e in entries])
    need(prob is None, "invalid-manifest", prob)
    return mth([leaf(e["path"], e["size"], e["blake3"]) for e in entries]).hex()


def check_predicate(pred):
    """Steps 10-11 over a whole predicate; returns the root hex."""
    need(isinstance(pred, dict) and PREDICATE_KEYS <= set(pred) <= PREDICATE_KEYS | OPTIONAL_PREDICATE_KEYS,
         "malformed-predicate", f"predicate fields {sorted(pred) if isinstance(pred, dict) else pred!r}")
    need(pred.get("scope", "directory") in ("directory", "file"), "malformed-predicate",
         f"scope {pred.get('scope')!r}")
    need(pred["kind"] in ("model", "dataset"), "malformed-predicate", f"kind {pred['kind']!r}")
    need(type(pred["allowSymlinks"]) is bool, "malformed-predicate", "allowSymlinks")
    ignores = pred["ignorePaths"]
    need(isinstance(ignores, list), "malformed-predicate", "ignorePaths is not a list")
    for p in ignores:
        need(path_problem(p) is None, "malformed-predicate", f"ignore path: {path_problem(p)}")
    return check_entries(pred["files"])


def walk(files, ignore):
    """§2 over an in-memory model: skip VCS names and ignore paths; path -> bytes."""
    model = {}
    for f in files:
        p = f["path"]
        if any(c in VCS_NAMES for c in p.split("/")):
            continue
        if any(p == ig or p.startswith(ig + "/") for ig in ignore):
            continue
        model[p] = bytes.fromhex(f["contentHex"])
    return model


# ---- statement.md ----------------------------------------------------------

def b64decode(s):  # DSSE: standard or URL-safe alphabet, padded or not
    if not isinstance(s, str):
        raise ValueError("not a string")
    s = s.replace("-", "+").replace("_", "/")
    return base64.b64decode(s + "=" * (-len(s) % 4), validate=True)


def fingerprint(key):  # §4: lowercase hex SHA-256 of the SPKI DER
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def strict_json(text):
    def no_dups(pairs):
        need(len({k for k, _ in pairs}) == len(pairs), "malformed-statement", "duplicate JSON key")
        return dict(pairs)
    def no_constants(name):
        raise Refused("malformed-statement", f"non-JSON constant {name}")
    return json.loads(text, object_pairs_hook=no_dups, parse_constant=no_constants)


def verify(bundle, trusted, files, extra_ignores=()):
    """statement.md §5, steps 2-14 (step 1 does not apply: the bundle is already an object)."""
    # 2: shape and media type
    bad = "malformed-bundle"
    need(isinstance(bundle, dict), bad, "bundle is not an object")
    need(bundle.get("mediaType") in MEDIA_TYPES, bad, f"media type {bundle.get('mediaType')!r}")
    vm, env = bundle.get("verificationMaterial"), bundle.get("dsseEnvelope")
    need(isinstance(vm, dict) and isinstance(env, dict), bad, "no verificationMaterial/dsseEnvelope")
    ptype, sigs = env.get("payloadType"), env.get("signatures")
    need(isinstance(ptype, str) and isinstance(sigs, list), bad, "payloadType/signatures")
    try:
        payload = b64decode(env.get("payload"))
        sig_bytes = [b64decode(s["sig"]) for s in sigs]
    except (ValueError, TypeError, KeyError) as e:
        raise Refused(bad, f"base64: {e}")
    need(all(s.get("keyid") is None or isinstance(s["keyid"], str) for s in sigs), bad, "keyid")
    # 3-4
    need(trusted, "no-trusted-keys")
    kinds = [k for k in ("publicKey", "certificate", "x509CertificateChain") if k in vm]
    need(kinds == ["publicKey"], "unsupported-verification-material", str(kinds))  # exactly one kind
    pk = vm.get("publicKey")
    need(isinstance(pk, dict), "unsupported-verification-material", str(sorted(vm)))
    # 5
    need(sigs, "no-signature")
    need(len(sigs) == 1, "multiple-signatures", f"{len(sigs)} signatures")
    # 6: Ed25519 over PAE, trying every trusted key; the hint only words the error
    t = ptype.encode("utf-8")
    pae = b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)
    def ok(key):
        try:
            key.verify(sig_bytes[0], pae)
            return True
        except InvalidSignature:
            return False
    if not any(ok(k) for k in trusted):
        hint = pk.get("hint")
        if isinstance(hint, str) and hint and hint not in {fingerprint(k) for k in trusted}:
            raise Refused("untrusted-signer", f"hint {hint}")
        raise Refused("bad-signature")
    # 7-9
    need(ptype == PAYLOAD_TYPE, "wrong-payload-type", ptype)
    try:
        st = strict_json(payload.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise Refused("malformed-statement", str(e))
    need(isinstance(st, dict) and isinstance(st.get("_type"), str), "malformed-statement", "no _type")
    need(st["_type"] == STATEMENT_TYPE, "wrong-statement-type", st["_type"])
    need(st.get("predicateType") == PREDICATE_TYPE, "wrong-predicate-type", repr(st.get("predicateType")))
    # 10-11
    pred = st.get("predicate")
    root = check_predicate(pred)
    # 12
    subj = st.get("subject")
    need(isinstance(subj, list) and len(subj) == 1 and isinstance(subj[0], dict),
         "subject-mismatch", "not exactly one subject")
    digest = subj[0].get("digest")
    got = digest.get("blake3") if isinstance(digest, dict) else None
    need(got == root, "subject-mismatch", f"subject {got!r} != root {root}")
    # 12b: every vector's model is a directory; a file-scoped signature is not about one
    need(pred.get("scope", "directory") == "directory", "wrong-scope", "a single file's signature")
    # 13 (no symlinks or special files in vectors; the signature file is not among `files`)
    model = walk(files, list(pred["ignorePaths"]) + list(extra_ignores))
    for p in model:
        need(path_problem(p) is None, "model-walk-refused", path_problem(p))
    # An empty walk is not refused here: every signed file is then reported missing.
    # 14: sizes first, hashes only when the size matches; collect every difference
    signed = {e["path"]: e for e in pred["files"]}
    modified = [p for p, e in signed.items() if p in model and
                (len(model[p]) != e["size"] or file_hash(model[p]) != e["blake3"])]
    missing = [p for p in signed if p not in model]
    unsigned = [p for p in model if p not in signed]
    need(not (modified or missing or unsigned), "files-mismatch",
         f"modified={modified} missing={missing} unsigned={unsigned}")
    return root


# ---- vector checks ---------------------------------------------------------

class Mismatch(Exception):
    pass


def check_manifest(v):
    if v["expect"] != "ok":
        raise Mismatch(f"expect is {v['expect']!r}, not 'ok'")
    model = walk(v["files"], [])
    got = []
    for p in sorted(model, key=lambda p: p.encode("utf-8")):  # §5: bytewise UTF-8 order
        e = {"path": p, "size": len(model[p]), "blake3": file_hash(model[p])}
        got.append(dict(e, leaf=leaf(p, e["size"], e["blake3"]).hex()))
    if len(got) != len(v["manifest"]):
        raise Mismatch(f"{len(v['manifest'])} manifest entries, recomputed {len(got)}")
    for g, w in zip(got, v["manifest"]):
        for field in ("path", "size", "blake3", "leaf"):
            if w.get(field) != g[field]:
                raise Mismatch(f"entry {g['path']!r}: {field} {w.get(field)!r} != recomputed {g[field]!r}")
    try:  # the recomputed manifest must itself satisfy §3/§5
        root = check_entries([{k: g[k] for k in ENTRY_KEYS} for g in got])
    except Refused as r:
        raise Mismatch(f"recomputed manifest is refused: {r}")
    if root != v["root"]:
        raise Mismatch(f"root {v['root']} != recomputed {root}")
    return "root " + root[:16] + "…"


def expect_outcome(v, fn, *args):
    """Run fn; its outcome kind ("ok" or a Refused kind) must equal the vector's expect."""
    try:
        fn(*args)
        kind, detail = "ok", ""
    except Refused as r:
        kind, detail = r.kind, str(r)
    if kind != v["expect"]:
        raise Mismatch(f"expected {v['expect']}, got {kind} ({detail})")
    return kind


def check_manifest_invalid(v):
    return expect_outcome(v, check_predicate, v["predicate"])


def check_bundle(v):
    key = serialization.load_pem_public_key(v["publicKeyPem"].encode())
    if not isinstance(key, Ed25519PublicKey):
        raise Mismatch("publicKeyPem is not an Ed25519 key")
    return expect_outcome(v, verify, v["bundle"], [key], v["files"])


KEYLESS_BINDING_CONTEXT = b"modelseal.dev/keyless-binding/v1\x00"


def check_keyless_binding(v):  # sigstore.md §4
    root = bytes.fromhex(v["root"])
    need(len(root) == 32, "keyless-binding", "root is not 32 bytes")
    binding = hashlib.sha256(KEYLESS_BINDING_CONTEXT + root).hexdigest()
    if binding != v["binding"]:
        raise Mismatch(f"binding {binding} != vector {v['binding']}")
    return binding[:16]


OCI_FAMILIES = ("application/vnd.cncf.model.", "application/vnd.kitops.modelkit.",
                "application/vnd.oci.image.layer.v1.", "application/vnd.docker.image.rootfs.diff.")


def oci_files(v):  # oci.md §4: what the layers unpack to, or the refusal's kind
    import gzip, io, tarfile
    raw = bytes.fromhex(v["manifestHex"])
    need(hashlib.sha256(raw).hexdigest() == v["manifestDigest"].split(":")[1], "digest", "manifest")
    manifest = json.loads(raw)
    blobs = {l["digest"]: bytes.fromhex(l["contentHex"]) for l in v["layers"]}
    files = {}
    for desc in manifest["layers"]:
        data = blobs[desc["digest"]]
        need(hashlib.sha256(data).hexdigest() == desc["digest"].split(":")[1], "digest", desc["digest"])
        mt = desc["mediaType"]
        need(mt.startswith(OCI_FAMILIES), "media-type", mt)
        if mt.endswith(".raw"):
            need(mt.startswith("application/vnd.cncf.model."), "media-type", mt)
            path = desc["annotations"]["org.cncf.model.filepath"]
            entries = [(path, "file", data)]
        else:
            if mt.endswith("+gzip") or mt.endswith(".gzip"):
                data = gzip.decompress(data)
            else:
                need(mt.endswith(".tar"), "media-type", mt)
            entries = []
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
                for m in tf.getmembers():
                    kind = "dir" if m.isdir() else "file" if m.isreg() else "link" if (m.issym() or m.islnk()) else "other"
                    body = tf.extractfile(m).read() if kind == "file" else b""
                    entries.append((m.name, kind, body))
        for name, kind, body in entries:
            while name.startswith("./"):
                name = name[2:]
            name = name.rstrip("/")
            if name in ("", ".") and kind == "dir":
                continue
            problem = path_problem(name)
            need(problem is None, "escape", f"{name}: {problem}")
            need(not name.rsplit("/", 1)[-1].startswith(".wh."), "whiteout", name)
            if kind == "dir":
                continue
            need(kind == "file", "link" if kind == "link" else "other", name)
            need(name not in files, "duplicate", name)
            files[name] = body
    return files


def check_oci(v):
    if v["expect"] != "ok":
        return expect_outcome(v, oci_files, v)
    files = oci_files(v)
    got = [{"path": p, "size": len(b), "blake3": file_hash(b)}
           for p, b in sorted(files.items(), key=lambda kv: kv[0].encode("utf-8"))]
    if got != v["files"]:
        raise Mismatch(f"files {got} != vector {v['files']}")
    return f"{len(got)} files"


STAMPS_PAYLOAD_TYPE = "application/vnd.modelseal.stamps.v1+json"
STAMPS_TYPE = "https://modelseal.dev/stamps/v1"
STAMP_KEYS = {"path", "dev", "ino", "size", "mtime", "ctime"}


def stamps_outcome(v):
    """incremental.md §2, §3 step 4: ("ok", kept paths) or the reason the stamps are unused."""
    try:
        env = strict_json(v["stampFile"])
        need(isinstance(env, dict) and set(env) == {"payload", "payloadType", "signatures"}, "malformed")
        need(env["payloadType"] == STAMPS_PAYLOAD_TYPE, "malformed", "payload type")
        need(isinstance(env["signatures"], list) and len(env["signatures"]) == 1, "malformed", "one signature")
        payload = b64decode(env["payload"])
        sig = b64decode(env["signatures"][0]["sig"])
    except (Refused, ValueError, KeyError, TypeError):
        return "malformed", []
    key = serialization.load_pem_public_key(v["publicKeyPem"].encode())
    pae = b"DSSEv1 %d %s %d %s" % (len(STAMPS_PAYLOAD_TYPE), STAMPS_PAYLOAD_TYPE.encode(), len(payload), payload)
    try:
        key.verify(sig, pae)
    except InvalidSignature:
        return "signature", []
    try:
        body = strict_json(payload)
        need(set(body) == {"_type", "signature", "model", "files", "layers"}, "malformed", "fields")
        for layer in body["layers"]:
            need(set(layer) == {"digest", "format", "files", "directories"}, "malformed", "layer fields")
            for p in layer["files"] + layer["directories"]:
                need(path_problem(p) is None, "malformed", f"layer path {p!r}")
        need(body["_type"] == STAMPS_TYPE, "malformed", "_type")
        stamps = {}
        for f in body["files"]:
            need(set(f) == STAMP_KEYS, "malformed", f"stamp fields {sorted(f)}")
            need(path_problem(f["path"]) is None, "malformed", f"path {f['path']!r}")
            need(f["path"] not in stamps, "malformed", "path twice")
            stamps[f["path"]] = {k: f[k] for k in STAMP_KEYS - {"path"}}
    except (Refused, ValueError, KeyError, TypeError):
        return "malformed", []
    signature_file = base64.b64decode(v["signatureFileBase64"])
    if body["signature"] != {"sha256": hashlib.sha256(signature_file).hexdigest()}:
        return "other-signature", []
    if body["model"] != v["model"]:
        return "other-model", []
    # §3 step 5: the stamp now equals the recorded one, the walk saw its size, and the old
    # signature lists the file at that size.
    old = v["oldManifestSizes"]
    kept = sorted(
        w["path"] for w in v["walked"]
        if w["path"] in stamps and w["stamp"] == stamps[w["path"]]
        and w["size"] == stamps[w["path"]]["size"] == old.get(w["path"])
    )
    return "ok", kept


def check_stamps(v):
    expect, kept = stamps_outcome(v)
    if (expect, kept) != (v["expect"], v["kept"]):
        raise ValueError(f"got {expect} {kept}, vector says {v['expect']} {v['kept']}")
    return f"{expect} ({len(kept)} kept)" if expect == "ok" else expect


def main():
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
    checks = {"manifest": check_manifest, "manifest-invalid": check_manifest_invalid,
              "bundle": check_bundle, "keyless-binding": check_keyless_binding,
              "oci": check_oci, "stamps": check_stamps}
    passed = failed = 0
    for sub, check in checks.items():
        for f in sorted((root / sub).glob("*.json")):
            name = f"{sub}/{f.stem}"
            try:
                note = check(json.loads(f.read_text("utf-8")))
                print(f"ok   {name:40} {note}")
                passed += 1
            except Exception as e:  # a mismatch, or a vector the checker cannot read
                print(f"FAIL {name}: {type(e).__name__}: {e}")
                failed += 1
    if passed + failed == 0:
        print(f"no vectors found under {root}")
        return 1
    print(f"{passed} passed, {failed} failed, {passed + failed} vectors")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

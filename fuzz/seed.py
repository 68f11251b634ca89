#!/usr/bin/env python3
"""Writes the seed corpora (fuzz/corpus/<target>/seed-*) from the project's own vectors,
test data and a run of the modelseal binary. Run from the repository root after
`cargo build --release`; what the fuzzers add later sits beside the seeds."""
import base64
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
EXE = os.environ.get("MODELSEAL", str(ROOT / "target" / "release" / "modelseal"))


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / f"seed-{hashlib.sha256(data).hexdigest()[:16]}").write_bytes(data)


def run(*args):
    subprocess.run([EXE, *map(str, args)], check=True, capture_output=True)


def payload(bundle_bytes):
    try:
        b = json.loads(bundle_bytes)
        return base64.b64decode(b["dsseEnvelope"]["payload"])
    except Exception:
        return None


def pem_ders(path):
    text = Path(path).read_text()
    out = []
    for block in text.split("-----BEGIN CERTIFICATE-----")[1:]:
        body = block.split("-----END CERTIFICATE-----")[0]
        out.append(base64.b64decode("".join(body.split())))
    return out


def unwrap(vector):
    """The bundle inside a spec vector file ({"bundle": …, …})."""
    return json.dumps(json.loads(vector)["bundle"]).encode()


bundles = [unwrap(p.read_bytes()) for p in sorted((ROOT / "spec/vectors/bundle").glob("*.json"))]
with tempfile.TemporaryDirectory() as tmp:
    t = Path(tmp)
    for n in ["pub", "ci", "cur", "ver"]:
        run("keygen", "--out", t / n)
    (t / "data").mkdir()
    (t / "data/train.jsonl").write_text('{"x": 1}\n')
    (t / "model").mkdir()
    (t / "model/w.bin").write_bytes(bytes((i * 31) % 251 for i in range(300_000)))
    run("sign", t / "data", "--kind", "dataset", "--key", t / "cur")
    run("sign", t / "model", "--key", t / "pub", "--outboard")
    run("attest", "training", "--model", t / "model", "--key", t / "ci", "--dataset",
        t / "data", "--code", "https://e.com/r.git@" + "ab" * 20, "--builder-id",
        "https://ci.example.com", "--out", t / "prov.sig")
    run("sign", t / "model", "--key", ROOT / "testdata/keys/ec-p256.priv.pem", "--format", "oms",
        "--signature", t / "oms.sig")
    policy = ('[[signer]]\nname = "p"\nroles = ["model-publisher"]\nkey = "pub.pub"\n'
              '[[signer]]\nname = "c"\nroles = ["training-builder"]\nkey = "ci.pub"\n'
              '[[signer]]\nname = "d"\nroles = ["dataset-curator"]\nkey = "cur.pub"\n'
              '[[signer]]\nname = "v"\nroles = ["verifier"]\nkey = "ver.pub"\n'
              '[datasets]\ndeny = ["name:scraped-*"]\n[vsa]\naccept = true\nmax_age = "1h"\n')
    (t / "policy.toml").write_text(policy)
    run("store", "add", t / "store", t / "data.sig", t / "model.sig", t / "prov.sig")
    run("verify", t / "model", "--policy", t / "policy.toml", "--lineage", "--store",
        t / "store", "--emit-vsa", t / "vsa.sig", "--vsa-key", t / "ver")
    made = {n: (t / f"{n}.sig").read_bytes() for n in ["model", "data", "prov", "oms", "vsa"]}
    outboards = sorted((t / "model.sig.outboard").rglob("*"))
    for ob in outboards:
        if ob.is_file():
            put("outboard", ob.read_bytes())
            put("outboard", ob.read_bytes()[:-64])
    put("policy_toml", policy)

for b in bundles + list(made.values()):
    put("bundle_json", b)
    put("envelope", b)
    p = payload(b)
    if p is not None:
        put("statement", p)
for name, target in [("model", "manifest_predicate"), ("data", "manifest_predicate"),
                     ("oms", "oms_predicate"), ("prov", "provenance"), ("vsa", "vsa")]:
    p = payload(made[name])
    put(target, p)
    # The same statement about the fuzz targets' expected digest, so the gate passes.
    s = json.loads(p)
    s["subject"] = [{"name": "m", "digest": {"blake3": "ab" * 32}}]
    put(target, json.dumps(s))
for b in bundles:
    p = payload(b)
    if p is not None:
        put("manifest_predicate", p)

put("policy_toml", "max_depth = 2\n[models]\ndeny = [\"blake3:" + "ab" * 32 + "\"]\n")
put("policy_toml", "[builders]\nallow = [\"https://ci\"]\n[vsa]\nmax_age = \"7d\"\n")
put("webhook_config", 'listen = "127.0.0.1:8443"\ntls_cert = "c.pem"\ntls_key = "k.pem"\n'
    'policy = "p.toml"\nstore = "store"\ncache_entries = 10\ncache_ttl_seconds = 60\n')
put("webhook_config", 'fail_open = true\nno_model = "deny"\nmax_body_bytes = 4096\n')
for obj in [
    {"metadata": {"annotations": {"modelseal.dev/model": "blake3:" + "ab" * 32,
                                  "modelseal.dev/model-name": "m"}}},
    {"spec": {"template": {"metadata": {"annotations": {"modelseal.dev/model": "a, b,,"}}}}},
]:
    put("admission_review", json.dumps({"apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview", "request": {"uid": "u", "object": obj, "dryRun": False,
        "namespace": "ns"}}))
header = json.dumps({"__metadata__": {"format": "pt"},
                     "a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
                     "b": {"dtype": "BF16", "shape": [3], "data_offsets": [16, 22]}}).encode()
put("safetensors_header", struct.pack("<Q", 8 + len(header) + 22) + header)
put("safetensors_header", struct.pack("<Q", 100) + b'{"a":{"dtype":"U8","shape":[],"data_offsets":[0,1]}}')
chains = ROOT / "testdata/certs/chains"
for leaf in sorted(chains.glob("leaf-*.pem")):
    ders = pem_ders(leaf) + pem_ders(chains / "int.pem")
    put("x509_chain", b"".join(struct.pack(">H", len(d)) + d for d in ders))
for text in ["blake3:" + "ab" * 32, "sha256:" + "0" * 64, "BLAKE3:" + "ab" * 32,
             "a/b/c.safetensors", "../x", "a//b", "./a"]:
    put("digests_and_paths", text)
# changed_file_reads: 8-byte records, byte changes (offset, value) then reads (start,
# length; the high bit of the first byte marks a read) over a 4 MiB + 3 KiB file.
size = (4 << 20) + 3072
change = lambda at, value: struct.pack("<II", at, value)  # noqa: E731
read = lambda at, n: struct.pack("<II", at | 0x80, n)  # noqa: E731
for seed in [read(0x80, 100) + read(0x80 + (4 << 20), 3000) + read(0x80, size),
             change(4 << 20 | 5, 0x41) + read(0x80 + (4 << 20), 10) + read(0x80, 4096),
             change(2 << 20 | 9, 0) + read(0x80 + 100, 1 << 20) + read(0x80 + (3 << 20), 70000),
             change(0, 7) + read(0x80 + size - 1, 1)]:
    put("changed_file_reads", seed)
# json_keys: manifests and documents whose keys readers match differently, and fine ones.
for doc in ['{"layers":[{"digest":"x"}],"Layers":[]}', '{"a":1,"a":2}',
            '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
            '"layers":[{"mediaType":"x","digest":"sha256:00","size":1,"annotations":{"k":"v"}}]}',
            '{"\u212aey":1}', '{"\u212aey":1}'.encode().decode("unicode_escape"),
            '[{"x":{"y":[1,2,{"z":null}]}}] ']:
    put("json_keys", doc)
print("seeded", sum(1 for _ in CORPUS.rglob("seed-*")), "files", file=sys.stderr)

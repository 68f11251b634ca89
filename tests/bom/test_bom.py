"""`modelseal bom` against the formats' own validators, and against the lineage report.

A lineage is built with the real CLI: a curated dataset, a base model trained on it, and a
fine-tuned chat model (with a model card) trained from both, with code, image, parameters
and times; everything signed and in a store. Each BOM is checked three ways:

- CycloneDX 1.6: the official JSON schema, through cyclonedx-python-lib's strict validator;
- SPDX 3.0.1: spdx3-validate (SPDX's JSON schema, then its SHACL shapes through pyshacl);
- facts: every hop of `verify --lineage --json`, with its digest, verdict and signers, is
  in the BOM, and nothing that was refused is presented as verified.

Refusals: a tampered model, a refused lineage (no BOM unless --allow-refused, and then
the refused hop marked), a model card that is not a signed file.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODELSEAL = Path(os.environ.get("MODELSEAL", REPO / "target/release/modelseal")).resolve()
HERE = Path(__file__).resolve().parent
COMMIT = "0123456789abcdef0123456789abcdef01234567"
IMAGE_DIGEST = "sha256:" + "ab" * 32
MANIFEST = "https://modelseal.dev/manifest/v1"
PROVENANCE = "https://slsa.dev/provenance/v1"


def run(*args, cwd, check=True):
    result = subprocess.run([str(MODELSEAL), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"modelseal {args}: exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


POLICY = f"""
[[signer]]
name = "release"
roles = ["model-publisher"]
key = "publisher.key.pub"
[[signer]]
name = "ci"
roles = ["training-builder"]
key = "builder.key.pub"
[[signer]]
name = "data"
roles = ["dataset-curator"]
key = "curator.key.pub"
[models]
require = ["{MANIFEST}", "{PROVENANCE}"]
[datasets]
require = ["{MANIFEST}"]
deny = ["name:scraped-*"]
"""


@pytest.fixture(scope="module")
def lineage(tmp_path_factory):
    d = tmp_path_factory.mktemp("lineage")
    fingerprints = {}
    for key in ["publisher", "builder", "curator"]:
        out = run("keygen", "--out", f"{key}.key", cwd=d).stdout
        fingerprints[key] = out.split("public key ", 1)[1].split()[0]
    (d / "fingerprints.json").write_text(json.dumps(fingerprints))
    for name in ["corpus", "instruct", "scraped-web", "base", "chat", "tainted"]:
        (d / name).mkdir()
    (d / "corpus/train.jsonl").write_text('{"text": "hello"}\n')
    (d / "instruct/train.jsonl").write_text('{"prompt": "hi", "answer": "hello"}\n')
    (d / "scraped-web/train.jsonl").write_text('{"text": "taken without asking"}\n')
    (d / "base/weights.bin").write_bytes(os.urandom(200_000))
    (d / "chat/weights.bin").write_bytes(os.urandom(200_000))
    (d / "chat/README.md").write_text("---\nlicense: apache-2.0\n---\n# chat\n\nA chat model.\n")
    (d / "tainted/weights.bin").write_bytes(os.urandom(50_000))
    for dataset in ["corpus", "instruct", "scraped-web"]:
        run("sign", dataset, "--kind", "dataset", "--key", "curator.key", cwd=d)
    for model in ["base", "chat", "tainted"]:
        run("sign", model, "--key", "publisher.key", cwd=d)
    run("attest", "training", "--model", "base", "--key", "builder.key", "--dataset", "corpus",
        "--builder-id", "https://ci.example/trainer", cwd=d)
    run("attest", "training", "--model", "chat", "--key", "builder.key", "--base-model", "base",
        "--dataset", "corpus", "--dataset", "instruct",
        "--code", f"https://git.example/train.git@{COMMIT}",
        "--image", f"registry.example/trainer@{IMAGE_DIGEST}",
        "--param", "learning_rate=0.0001", "--param", "epochs=3",
        "--entry-point", "python train.py",
        "--started-on", "2026-11-30T10:00:00Z", "--finished-on", "2026-11-30T18:30:00Z",
        "--builder-id", "https://ci.example/trainer", cwd=d)
    run("attest", "training", "--model", "tainted", "--key", "builder.key", "--base-model", "base",
        "--dataset", "scraped-web", "--builder-id", "https://ci.example/trainer", cwd=d)
    sigs = [p.name for p in d.glob("*.sig")]
    run("store", "add", "store", *sigs, cwd=d)
    (d / "policy.toml").write_text(POLICY)
    return d


def lineage_report(d: Path, model: str) -> dict:
    result = run("verify", model, "--policy", "policy.toml", "--lineage", "--store", "store", "--json",
                 cwd=d, check=False)
    return json.loads(result.stdout)


def hops(tree: dict):
    yield tree
    for child in tree["inputs"]:
        yield from hops(child)


def fingerprint(d: Path, key: str) -> str:
    """The key's fingerprint as keygen printed it."""
    return json.loads((d / "fingerprints.json").read_text())[key]


def bom(d: Path, model: str, fmt: str, *extra, check=True):
    out = d / f"{model}.{fmt}.json"
    out.unlink(missing_ok=True)
    result = run("bom", model, "--policy", "policy.toml", "--store", "store", "--format", fmt,
                 "--out", out, "-q", *extra, cwd=d, check=check)
    return result, out


# --- the formats' own validators -------------------------------------------------------

def validate_cyclonedx(path: Path) -> list[str]:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(path.read_text(), all_errors=True)
    if errors is None:
        return []
    errors = errors if isinstance(errors, (list, tuple)) or hasattr(errors, "__iter__") else [errors]
    return [str(getattr(e, "data", e)) for e in errors]


def validate_spdx(path: Path) -> tuple[int, str]:
    """SPDX 3.0.1 through the SPDX project's own Python bindings (spdx-python-model, generated
    from the 3.0.1 model and its shapes): every property known, of its type, in its value
    set, with its required count, and every reference resolved in the document."""
    from spdx_python_model import v3_0_1 as spdx

    objects = spdx.SHACLObjectSet()
    try:
        spdx.JSONLDDeserializer().read(io.StringIO(path.read_text()), objects)
        missing = objects.link()
        # Writing back checks each property's required count.
        spdx.JSONLDSerializer().write(objects, io.BytesIO())
    except (ValueError, KeyError, TypeError) as e:
        return 1, f"{type(e).__name__}: {e}"
    if missing:
        return 1, f"references to nothing in the document: {sorted(missing)}"
    return 0, ""


def validate_spdx_shapes(path: Path) -> tuple[int, str]:
    """spdx3-validate: SPDX's JSON schema, then its SHACL shapes (pyshacl). It reads the
    official 3.0.1 files from spdx.org, which CI cannot reach; SPDX_3_DIR names a local copy
    of them (not shipped: no package registry carries them)."""
    result = subprocess.run([sys.executable, str(HERE / "spdx3_offline.py"), "-q", "--json", str(path)],
                            capture_output=True, text=True, timeout=300)
    return result.returncode, result.stdout + result.stderr


def test_the_validators_refuse_what_is_wrong(lineage, tmp_path):
    # Each validator must be able to say no, or its yes below proves nothing.
    _, good = bom(lineage, "chat", "cyclonedx")
    doc = json.loads(good.read_text())
    doc["metadata"]["component"]["hashes"][0]["alg"] = "blake3"
    bad = tmp_path / "bad.cdx.json"
    bad.write_text(json.dumps(doc))
    assert validate_cyclonedx(bad), "a lowercase hash algorithm must fail the schema"
    _, good = bom(lineage, "chat", "spdx")
    doc = json.loads(good.read_text())
    dataset = next(e for e in doc["@graph"] if e["type"] == "dataset_DatasetPackage")
    del dataset["dataset_datasetType"]
    bad = tmp_path / "bad.spdx.json"
    bad.write_text(json.dumps(doc))
    code, text = validate_spdx(bad)
    assert code != 0, f"a dataset without a type must fail SPDX's bindings:\n{text}"
    doc = json.loads(good.read_text())
    relation = next(e for e in doc["@graph"] if e["type"] == "Relationship")
    relation["to"] = ["urn:uuid:00000000-0000-4000-8000-000000000000#nothing"]
    bad.write_text(json.dumps(doc))
    assert validate_spdx(bad)[0] != 0, "a dangling reference must fail"


@pytest.mark.skipif("SPDX_3_DIR" not in os.environ,
                    reason="SPDX_3_DIR (the spdx.org 3.0.1 schema, shapes and context) is not set")
def test_spdx_passes_the_official_shapes(lineage, tmp_path):
    for model in ["chat", "tainted"]:
        _, path = bom(lineage, model, "spdx", "--allow-refused", check=False)
        code, text = validate_spdx_shapes(path)
        assert code == 0, text
    doc = json.loads(path.read_text())
    dataset = next(e for e in doc["@graph"] if e["type"] == "dataset_DatasetPackage")
    del dataset["dataset_datasetType"]
    bad = tmp_path / "bad.spdx.json"
    bad.write_text(json.dumps(doc))
    assert validate_spdx_shapes(bad)[0] != 0


def test_cyclonedx_is_valid_and_holds_the_verified_lineage(lineage):
    result, path = bom(lineage, "chat", "cyclonedx")
    assert validate_cyclonedx(path) == []
    doc = json.loads(path.read_text())
    report = lineage_report(lineage, "chat")
    assert report["verified"] and report["lineage"]["passed"]
    top = doc["metadata"]["component"]
    components = {c["bom-ref"]: c for c in [top, *doc["components"]]}
    # bom-refs are unique and every dependency names a component (the schema checks neither).
    refs = [top["bom-ref"], *(c["bom-ref"] for c in doc["components"])]
    assert len(refs) == len(set(refs))
    for dep in doc["dependencies"]:
        assert dep["ref"] in components
        assert all(r in components for r in dep["dependsOn"])

    def props(c, name):
        return [p["value"] for p in c.get("properties", []) if p["name"] == name]

    by_digest = {c["hashes"][0]["content"]: c for c in components.values()}
    tree = report["lineage"]["tree"]
    seen = set()
    for hop in hops(tree):
        digest = hop["digest"].split(":", 1)[1]
        seen.add(digest)
        c = by_digest[digest]
        assert c["hashes"][0]["alg"] == "BLAKE3"
        assert c["name"] == hop["name"]
        assert c["type"] == ("data" if hop["kind"] == "dataset" else "machine-learning-model")
        assert props(c, "modelseal:verdict") == ["verified"]
        for signer in hop["signers"]:
            assert signer in props(c, "modelseal:signer:name"), (signer, c)
        # The dependency graph is the lineage tree.
        dep = next(x for x in doc["dependencies"] if x["ref"] == c["bom-ref"])
        wanted = {by_digest[i["digest"].split(":", 1)[1]]["bom-ref"] for i in hop["inputs"]}
        assert set(dep["dependsOn"]) == wanted
    assert seen == set(by_digest), "no component the lineage does not have"
    # Signers by key fingerprint and role.
    fps = {k: fingerprint(lineage, k) for k in ["publisher", "builder", "curator"]}
    assert fps["publisher"] in props(top, "modelseal:signer:keyFingerprint")
    assert fps["builder"] in props(top, "modelseal:signer:keyFingerprint")
    corpus = next(c for c in components.values() if c["name"] == "corpus")
    assert props(corpus, "modelseal:signer:keyFingerprint") == [fps["curator"]]
    assert props(corpus, "modelseal:signer:role") == ["dataset-curator"]
    assert corpus["data"][0]["type"] == "dataset"
    # The training run: builder, code commit, image, parameters, times, output.
    runs = [f for f in doc["formulation"] if top["bom-ref"] in json.dumps(f["workflows"][0]["outputs"])]
    assert len(runs) == 1
    workflow = runs[0]["workflows"][0]
    assert workflow["timeStart"] == "2026-11-30T10:00:00Z"
    assert workflow["timeEnd"] == "2026-11-30T18:30:00Z"
    assert props(workflow, "modelseal:builder:id") == ["https://ci.example/trainer"]
    params = {p["name"]: p["value"] for i in workflow["inputs"] for p in i.get("parameters", [])}
    assert params["hyperparameters.learning_rate"] == "0.0001"
    assert params["hyperparameters.epochs"] == "3"
    materials = {c["type"]: c for c in runs[0]["components"]}
    assert materials["application"]["version"] == COMMIT
    assert materials["container"]["hashes"] == [{"alg": "SHA-256", "content": IMAGE_DIGEST.split(":")[1]}]
    # The model card is a signed file, referenced with its signed BLAKE3.
    manifest = json.loads(run("hash", "chat", "--json", cwd=lineage).stdout)
    readme = next(f for f in manifest["files"] if f["path"] == "README.md")
    card = top["externalReferences"][0]
    assert card["type"] == "model-card" and card["url"] == "README.md"
    assert card["hashes"][0]["content"] == readme["blake3"]
    files = {f["name"]: f["hashes"][0]["content"] for f in top["components"]}
    assert files == {f["path"]: f["blake3"] for f in manifest["files"]}
    assert props(doc["metadata"], "modelseal:lineage:verdict") == ["passed"]


def test_spdx_is_valid_and_holds_the_verified_lineage(lineage):
    result, path = bom(lineage, "chat", "spdx")
    code, text = validate_spdx(path)
    assert code == 0, text
    doc = json.loads(path.read_text())
    graph = {e.get("spdxId", e.get("@id")): e for e in doc["@graph"]}
    document = next(e for e in doc["@graph"] if e["type"] == "SpdxDocument")
    assert {"ai", "dataset", "build"} <= set(document["profileConformance"])
    report = lineage_report(lineage, "chat")
    packages = {e["verifiedUsing"][0]["hashValue"]: e for e in doc["@graph"]
                if e["type"] in ("ai_AIPackage", "dataset_DatasetPackage")}
    relationships = [e for e in doc["@graph"] if e["type"].endswith("Relationship")]
    annotations = [e for e in doc["@graph"] if e["type"] == "Annotation"]
    for hop in hops(report["lineage"]["tree"]):
        p = packages[hop["digest"].split(":", 1)[1]]
        assert p["type"] == ("dataset_DatasetPackage" if hop["kind"] == "dataset" else "ai_AIPackage")
        assert p["name"] == hop["name"]
        assert p["verifiedUsing"][0]["algorithm"] == "blake3"
        review = [json.loads(a["statement"]) for a in annotations if a["subject"] == p["spdxId"]]
        assert [r["modelseal:verdict"] for r in review] == ["verified"]
        assert {s["name"] for s in review[0]["signers"]} == set(hop["signers"])
        for child in hop["inputs"]:
            kind = "trainedOn" if child["kind"] == "dataset" else "descendantOf"
            target = packages[child["digest"].split(":", 1)[1]]["spdxId"]
            assert any(r["from"] == p["spdxId"] and r["relationshipType"] == kind and target in r["to"]
                       for r in relationships), (hop["name"], kind, child["name"])
    assert len(packages) == len({h["digest"] for h in hops(report["lineage"]["tree"])})
    builds = [e for e in doc["@graph"] if e["type"] == "build_Build"]
    top = packages[report["lineage"]["tree"]["digest"].split(":", 1)[1]]
    run_of_top = [b for b in builds if any(
        r["from"] == b["spdxId"] and r["relationshipType"] == "hasOutput" and top["spdxId"] in r["to"]
        for r in relationships)]
    assert len(run_of_top) == 1
    b = run_of_top[0]
    assert b["build_buildStartTime"] == "2026-11-30T10:00:00Z"
    assert b["build_configSourceDigest"][0]["hashValue"] == COMMIT
    assert {e["key"]: e["value"] for e in b["build_parameter"]}["hyperparameters.epochs"] == "3"
    assert IMAGE_DIGEST in b["build_environment"][0]["value"]
    invoked = [r for r in relationships if r["from"] == b["spdxId"] and r["relationshipType"] == "invokedBy"]
    assert graph[invoked[0]["to"][0]]["name"] == "https://ci.example/trainer"
    supplier = graph[top["suppliedBy"]]
    assert supplier["externalIdentifier"][0]["identifier"] == fingerprint(lineage, "publisher")
    card = [r for r in relationships if r["from"] == top["spdxId"] and r["relationshipType"] == "hasDocumentation"]
    assert graph[card[0]["to"][0]]["name"] == "README.md"


def test_a_refused_lineage_gets_no_bom_unless_asked_and_then_it_says_so(lineage):
    result, path = bom(lineage, "tainted", "cyclonedx", check=False)
    assert result.returncode == 1, result.stderr
    assert "denied by policy rule name:scraped-*" in result.stderr
    assert not path.exists(), "no BOM for a refused lineage"
    result, path = bom(lineage, "tainted", "cyclonedx", "--allow-refused", check=False)
    assert result.returncode == 1
    assert validate_cyclonedx(path) == []
    doc = json.loads(path.read_text())
    scraped = next(c for c in doc["components"] if c["name"].startswith("scraped-web"))
    props = {p["name"]: p["value"] for p in scraped["properties"]}
    assert props["modelseal:verdict"] == "refused"
    assert props["modelseal:verdict:kind"] == "denied"
    lineage_props = {p["name"]: p["value"] for p in doc["metadata"]["properties"]}
    assert lineage_props["modelseal:lineage:verdict"] == "refused"
    # The base model's part still verified, and says so.
    base = next(c for c in doc["components"] if c["name"] == "base")
    assert {p["name"]: p["value"] for p in base["properties"]}["modelseal:verdict"] == "verified"
    result, path = bom(lineage, "tainted", "spdx", "--allow-refused", check=False)
    assert result.returncode == 1
    code, text = validate_spdx(path)
    assert code == 0, text
    dataset = next(e for e in json.loads(path.read_text())["@graph"] if e["type"] == "dataset_DatasetPackage"
                   and e["name"].startswith("scraped-web"))
    assert dataset["comment"].startswith("UNVERIFIED")


def test_a_tampered_model_gets_no_bom(lineage, tmp_path):
    copy = lineage / "chat-tampered"
    subprocess.run(["cp", "-r", str(lineage / "chat"), str(copy)], check=True)
    (lineage / "chat-tampered.sig").write_bytes((lineage / "chat.sig").read_bytes())
    data = bytearray((copy / "weights.bin").read_bytes())
    data[1000] ^= 1
    (copy / "weights.bin").write_bytes(bytes(data))
    result, path = bom(lineage, "chat-tampered", "spdx", check=False)
    assert result.returncode == 1, result.stderr
    assert "weights.bin" in result.stderr or "manifest" in result.stderr
    assert not path.exists()


def test_the_model_card_must_be_a_signed_file(lineage):
    result, path = bom(lineage, "chat", "cyclonedx", "--model-card", "CARD.md", check=False)
    assert result.returncode == 2
    assert "not a signed file" in result.stderr
    assert not path.exists()


def test_a_signed_bom_lands_in_the_store_as_an_attestation(lineage):
    result, path = bom(lineage, "chat", "cyclonedx", "--sign-key", "builder.key")
    assert "added it to store" in result.stderr
    root = run("hash", "chat", cwd=lineage).stdout.split()[0]
    listed = run("store", "list", "store", root, cwd=lineage).stdout
    assert "https://cyclonedx.org/bom" in listed
    # The lineage walk is unmoved by the new attestation.
    assert lineage_report(lineage, "chat")["lineage"]["passed"]


def test_a_default_card_that_is_not_text_is_left_out_but_a_named_one_is_an_error(lineage):
    d = lineage
    (d / "carded").mkdir()
    (d / "carded/weights.bin").write_bytes(os.urandom(10_000))
    (d / "carded/README.md").write_bytes(b"# card\n\xff\xfe not UTF-8\n")
    run("sign", "carded", "--key", "publisher.key", cwd=d)
    run("attest", "training", "--model", "carded", "--key", "builder.key", "--dataset", "corpus",
        "--builder-id", "https://ci.example/trainer", cwd=d)
    run("store", "add", "store", *[p.name for p in d.glob("carded*.sig")], cwd=d)
    # Found by default: a BOM without a card, and a warning that says why.
    result, path = bom(d, "carded", "cyclonedx")
    assert "no model card in the BOM" in result.stderr and "not UTF-8" in result.stderr, result.stderr
    assert validate_cyclonedx(path) == []
    top = json.loads(path.read_text())["metadata"]["component"]
    assert not any(r["type"] == "model-card" for r in top.get("externalReferences", []))
    # Asked for by name: no BOM at all.
    result, path = bom(d, "carded", "spdx", "--model-card", "README.md", check=False)
    assert result.returncode != 0 and "not UTF-8" in result.stderr, result.stderr
    assert not path.exists()

"""A registry as the attestation store (`--store oci://…`, `store = "oci://…"`) and the
admission server deciding for models named by OCI reference (Pod image volumes, model
containers, KServe storage URIs), against the real registry on loopback."""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

import registry as r
from conftest import write_small_model
from test_oci_cli import BIN, ms

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A registry with a signed model (ModelPack), its dataset and provenance in a registry
    store, and a policy; plus an unsigned model and a model trained on a denied dataset."""
    d = tmp_path_factory.mktemp("world")
    with r.LocalRegistry(d / "registry") as reg:
        ca = ["--registry-ca", reg.ca_pem]
        for k in ("publisher", "builder", "curator"):
            assert ms("keygen", "--out", d / f"{k}.key").returncode == 0
        corpus = d / "corpus"
        corpus.mkdir()
        (corpus / "train.jsonl").write_text('{"text": "hello"}\n')
        scraped = d / "scraped-web"
        scraped.mkdir()
        (scraped / "train.jsonl").write_text('{"text": "taken"}\n')
        for ds in (corpus, scraped):
            assert ms("sign", ds, "--kind", "dataset", "--key", d / "curator.key").returncode == 0
        models = {}
        for name, dataset in (("good", corpus), ("tainted", scraped)):
            local = write_small_model(d / name)
            digest = r.push_modelpack(reg, f"models/{name}", "v1", local, client="http")
            out = ms("sign", f"oci://{reg.host}/models/{name}:v1", "--key", d / "publisher.key",
                     "--signature", d / f"{name}.oci.sig", *ca, "-q")
            assert out.returncode == 0, out.stderr
            out = ms("attest", "training", "--model", local, "--key", d / "builder.key",
                     "--dataset", dataset, "--builder-id", "https://ci.example.com/trainer")
            assert out.returncode == 0, out.stderr
            models[name] = (digest, local)
        r.push_modelpack(reg, "models/unsigned", "v1", write_small_model(d / "unsigned"), client="http")
        store = f"oci://{reg.host}/attestations"
        bundles = [d / "corpus.sig", d / "scraped-web.sig"]
        for name in models:
            bundles += [d / f"{name}.oci.sig", d / f"{name}.provenance.sig"]
        out = ms("store", "add", store, *bundles, *ca)
        assert out.returncode == 0, out.stderr
        (d / "policy.toml").write_text(
            """
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
[datasets]
deny = ["name:scraped-*"]
[builders]
allow = ["https://ci.example.com/trainer"]
"""
        )
        yield {"dir": d, "reg": reg, "ca": ca, "store": store, "models": models}


def test_lineage_is_checked_from_a_registry_store(world):
    reg, ca, d = world["reg"], world["ca"], world["dir"]
    out = ms("store", "list", world["store"], *ca)
    assert out.returncode == 0, out.stderr
    listed = out.stdout.split()
    good_digest = world["models"]["good"][0]
    assert good_digest in listed, listed  # filed under the manifest digest too
    assert sum(x.startswith("blake3:") for x in listed) >= 4, listed

    ref = f"oci://{reg.host}/models/good:v1"
    out = ms("verify", ref, "--policy", d / "policy.toml", "--lineage", "--store", world["store"],
             *ca, "-q", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["lineage"]["passed"] is True, report["lineage"]
    out = ms("verify", f"oci://{reg.host}/models/tainted:v1", "--policy", d / "policy.toml",
             "--lineage", "--store", world["store"], *ca, "-q")
    assert out.returncode == 1, out.stderr
    assert "scraped-web" in out.stdout + out.stderr


def test_a_store_in_an_unreachable_registry_fails_closed(world):
    d = world["dir"]
    store = f"oci://{r.unreachable_host()}/attestations"
    out = ms("verify", d / "good", "--signature", d / "good.oci.sig", "--policy", d / "policy.toml",
             "--lineage", "--store", store, "-q")
    assert out.returncode != 0
    assert "unreachable" in out.stdout + out.stderr, out.stdout + out.stderr


def review(obj):
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "u-1", "object": obj}}


def pod(volume_ref=None, container_ref=None):
    spec = {"containers": [{"name": "server", "image": "registry.example.com/inference:1"}]}
    meta = {"name": "p"}
    if volume_ref:
        spec["volumes"] = [{"name": "weights", "image": {"reference": volume_ref}}]
    if container_ref:
        spec["containers"].append({"name": "modelcar", "image": container_ref})
        meta["annotations"] = {"modelseal.dev/model-containers": "modelcar"}
    return {"metadata": meta, "spec": spec}


def start_server(world, name, extra, policy="policy.toml"):
    d = world["dir"]
    tls = r.TlsMaterial.create(d / f"{name}-tls")
    port = r.free_port()
    (d / f"{name}.toml").write_text(
        f"""
listen = "127.0.0.1:{port}"
tls_cert = "{tls.cert_pem}"
tls_key = "{tls.key_pem}"
policy = "{policy}"
store = "{world['store']}"
registry_ca = "{world['reg'].ca_pem}"
registry_timeout_ms = 3000
{extra}
"""
    )
    proc = subprocess.Popen([BIN, "serve", "--config", d / f"{name}.toml"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"https://127.0.0.1:{port}"
    session = requests.Session()
    session.trust_env = False
    session.verify = str(tls.ca_pem)
    for _ in range(100):
        try:
            if session.get(f"{url}/healthz", timeout=2).ok:
                break
        except requests.RequestException:
            time.sleep(0.1)
    else:
        proc.kill()
        raise AssertionError(proc.stdout.read().decode())

    def ask(obj):
        resp = session.post(f"{url}/validate", json=review(obj), timeout=20)
        assert resp.status_code == 200, resp.text
        return resp.json()["response"]

    return proc, ask


@pytest.fixture(scope="module")
def server(world):
    """Tags resolved, models admitted from the test registry only."""
    proc, ask = start_server(
        world, "resolving", f'oci_registries = ["{world["reg"].host}"]\noci_tags = "resolve"'
    )
    yield ask
    proc.terminate()
    proc.wait(timeout=30)


def test_by_default_tags_and_unlisted_registries_are_refused(world):
    host = world["reg"].host
    digest = world["models"]["good"][0]
    proc, ask = start_server(world, "default", "")
    try:
        # No registry listed: no reference is admitted, and no request is made.
        denied = ask(pod(volume_ref=f"{host}/models/good@{digest}"))
        assert denied["allowed"] is False
        assert "oci_registries" in denied["status"]["message"], denied
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    proc, ask = start_server(world, "strict", f'oci_registries = ["{host}"]')
    try:
        by_tag = ask(pod(volume_ref=f"{host}/models/good:v1"))
        assert by_tag["allowed"] is False
        assert "name the model by digest" in by_tag["status"]["message"], by_tag
        assert ask(pod(volume_ref=f"{host}/models/good@{digest}"))["allowed"] is True
        other = ask(pod(volume_ref=f"{r.unreachable_host()}/models/good@{digest}"))
        assert other["allowed"] is False and "oci_registries" in other["status"]["message"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_manifest_digest_never_stands_for_the_model_itself(world, server):
    """The OCI signature is filed under the manifest digest too; naming that digest as the
    model (annotation) must not pass on the publisher's signature alone, skipping the
    lineage filed under the root, nor plant a cached yes for the reference path."""
    tainted = world["models"]["tainted"][0]
    annotated = server({"metadata": {"name": "p", "annotations": {"modelseal.dev/model": tainted}}})
    assert annotated["allowed"] is False, annotated
    by_ref = server(pod(volume_ref=f"{world['reg'].host}/models/tainted@{tainted}"))
    assert by_ref["allowed"] is False and "scraped-web" in by_ref["status"]["message"], by_ref


def test_a_pod_whose_model_is_an_oci_reference_is_admitted_by_its_signed_lineage(world, server):
    host = world["reg"].host
    good = server(pod(volume_ref=f"{host}/models/good:v1"))
    assert good["allowed"] is True, good
    digest = world["models"]["good"][0]
    by_digest = server(pod(container_ref=f"{host}/models/good@{digest}"))
    assert by_digest["allowed"] is True, by_digest
    kserve = server({"metadata": {"name": "isvc"},
                     "spec": {"predictor": {"model": {"storageUri": f"oci://{host}/models/good:v1"}}}})
    assert kserve["allowed"] is True, kserve
    # The server's own image is not a model: only volumes and named containers count.
    assert server(pod())["allowed"] is True  # no model named: the default lets it through


def test_unsigned_tainted_and_pushed_over_models_are_denied(world, server, tmp_path):
    reg, host = world["reg"], world["reg"].host
    unsigned = server(pod(volume_ref=f"{host}/models/unsigned:v1"))
    assert unsigned["allowed"] is False
    assert "no model-publisher signature" in unsigned["status"]["message"], unsigned
    tainted = server(pod(volume_ref=f"{host}/models/tainted:v1"))
    assert tainted["allowed"] is False
    assert "scraped-web" in tainted["status"]["message"], tainted
    # A tag pushed over after signing: the new manifest has no signature in the store.
    r.push_modelpack(reg, "models/moved", "v1", write_small_model(tmp_path / "a"), client="http")
    out = ms("sign", f"oci://{host}/models/moved:v1", "--key", world["dir"] / "publisher.key",
             "--signature", tmp_path / "moved.sig", *world["ca"], "-q")
    assert out.returncode == 0, out.stderr
    assert ms("store", "add", world["store"], tmp_path / "moved.sig", *world["ca"]).returncode == 0
    r.push_modelpack(reg, "models/moved", "v2", write_small_model(tmp_path / "b"), client="http")
    moved = server(pod(volume_ref=f"{host}/models/moved:v2"))
    assert moved["allowed"] is False, moved
    missing = server(pod(volume_ref=f"{host}/models/nothing-here:v1"))
    assert missing["allowed"] is False
    assert "could not resolve" in missing["status"]["message"], missing


def test_an_unreachable_model_registry_denies(world, tmp_path):
    gone = r.unreachable_host()
    proc, ask = start_server(world, "gone", f'oci_registries = ["{gone}"]\noci_tags = "resolve"')
    try:
        denied = ask(pod(volume_ref=f"{gone}/models/m:v1"))
        assert denied["allowed"] is False
        assert "could not resolve" in denied["status"]["message"], denied
        assert "unreachable" in denied["status"]["message"], denied
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_pull_applies_the_policys_own_rules_for_the_model(world, tmp_path):
    d, reg, ca = world["dir"], world["reg"], world["ca"]
    root = "blake3:" + json.loads(ms("hash", d / "good", "--json", "-q").stdout)["root"]["blake3"]
    policy = (d / "policy.toml").read_text() + f'\n[models]\ndeny = ["{root}"]\n'
    (d / "revoked.toml").write_text(policy)
    dest = tmp_path / "pulled"
    out = ms("pull", f"oci://{reg.host}/models/good:v1", dest, "--policy", d / "revoked.toml", *ca, "-q")
    assert out.returncode == 1, out.stderr
    assert "refused by policy" in out.stderr, out.stderr
    assert not dest.exists() and not (tmp_path / "pulled.sig").exists()
    assert list(tmp_path.iterdir()) == []
    out = ms("pull", f"oci://{reg.host}/models/good:v1", dest, "--policy", d / "policy.toml", *ca, "-q")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "pulled.sig").is_file()


def test_attest_training_hashes_a_model_and_a_dataset_in_the_registry(world, tmp_path):
    d, reg, ca = world["dir"], world["reg"], world["ca"]
    ref = f"oci://{reg.host}/models/good:v1"
    out = ms("attest", "training", "--model", ref, "--key", d / "builder.key", *ca,
             "--dataset", f"oci://{reg.host}/models/unsigned:v1", "--builder-id", "https://ci.example.com/trainer")
    assert out.returncode == 2 and "--out is required" in out.stderr, out.stderr
    prov = tmp_path / "p.sig"
    out = ms("attest", "training", "--model", ref, "--key", d / "builder.key", *ca, "--out", prov,
             "--dataset", f"oci://{reg.host}/models/unsigned:v1", "--builder-id", "https://ci.example.com/trainer")
    assert out.returncode == 0, out.stderr
    shown = json.loads(ms("inspect", prov, "--json").stdout)
    local = json.loads(ms("hash", d / "good", "--json", "-q").stdout)["root"]["blake3"]
    assert shown["subject"][0]["digest"]["blake3"] == local
    [dataset] = shown["predicate"]["buildDefinition"]["resolvedDependencies"][:1]
    unsigned = json.loads(ms("hash", d / "unsigned", "--json", "-q").stdout)["root"]["blake3"]
    assert dataset["digest"]["blake3"] == unsigned
    assert dataset["name"] == f"{reg.host}/models/unsigned"


def test_a_policy_denying_the_manifest_digest_applies_everywhere(world, tmp_path):
    """`[models] deny = ["sha256:<manifest digest>"]` denies exactly that image (spec/policy.md):
    in verify and pull of oci://, and in admission. Failed on main: all three said yes."""
    d, reg, ca = world["dir"], world["reg"], world["ca"]
    digest = world["models"]["good"][0]
    (d / "manifest-denied.toml").write_text(
        (d / "policy.toml").read_text() + f'\n[models]\ndeny = ["{digest}"]\n'
    )
    ref = f"oci://{reg.host}/models/good@{digest}"
    out = ms("verify", ref, "--policy", d / "manifest-denied.toml", *ca, "-q")
    assert out.returncode == 1 and f"denied by policy rule {digest}" in out.stderr, out.stderr
    out = ms("verify", ref, "--policy", d / "manifest-denied.toml", "--lineage",
             "--store", world["store"], *ca, "-q")
    assert out.returncode == 1 and f"denied by policy rule {digest}" in out.stderr, out.stderr
    dest = tmp_path / "pulled"
    out = ms("pull", ref, dest, "--policy", d / "manifest-denied.toml", *ca, "-q")
    assert out.returncode == 1 and "refused by policy" in out.stderr, out.stderr
    assert not dest.exists()
    # The same commands pass under the policy without the rule.
    assert ms("verify", ref, "--policy", d / "policy.toml", *ca, "-q").returncode == 0
    # A directory pulled before the rule existed keeps the manifest its signer named, and
    # the rule applies to it offline too (found by the second attack review).
    pulled = tmp_path / "pulled-earlier"
    assert ms("pull", ref, pulled, "--policy", d / "policy.toml", *ca, "-q").returncode == 0
    out = ms("verify", pulled, "--policy", d / "manifest-denied.toml", "-q")
    assert out.returncode == 1 and f"denied by policy rule {digest}" in out.stderr, out.stderr
    # Found by the third attack review (each said yes on main): the rule held for `verify`
    # of that directory only, not for the other doors that see it by its BLAKE3 root.
    out = ms("bom", pulled, "--policy", d / "manifest-denied.toml", "--store", world["store"],
             "--format", "cyclonedx", *ca, "-q")
    assert out.returncode == 1 and f"denied by policy rule {digest}" in out.stderr, out.stderr
    out = ms("verify", pulled, "--policy", d / "manifest-denied.toml", "--lineage",
             "--store", world["store"], *ca, "-q")
    assert out.returncode == 1 and f"denied by policy rule {digest}" in out.stderr, out.stderr
    port = r.free_port()
    watch = subprocess.Popen([BIN, "watch", pulled, "--policy", d / "manifest-denied.toml",
                              "--listen", f"127.0.0.1:{port}"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        seen = None
        for _ in range(100):
            try:
                seen = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                if "refused by policy" in seen.text:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
        assert seen is not None and seen.status_code == 503, seen and seen.text
        assert "refused by policy" in seen.text and digest in seen.text, seen.text
    finally:
        watch.terminate()
        watch.wait(timeout=30)
    root = "blake3:" + json.loads(ms("hash", pulled, "--json", "-q").stdout)["root"]["blake3"]
    proc, ask = start_server(world, "server-manifest-denied", f'oci_registries = ["{reg.host}"]',
                             policy="manifest-denied.toml")
    try:
        denied = ask(pod(volume_ref=f"{reg.host}/models/good@{digest}"))
        assert denied["allowed"] is False, denied
        assert "refused by policy" in denied["status"]["message"], denied
        by_root = {"metadata": {"name": "p", "annotations": {"modelseal.dev/model": root}},
                   "spec": {"containers": [{"name": "s", "image": "registry.example.com/i:1"}]}}
        denied = ask(by_root)
        assert denied["allowed"] is False and digest in denied["status"]["message"], denied
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_second_attached_signature_does_not_get_around_a_name_deny_rule(world, tmp_path):
    """Tenth attack review (a wrong yes on main): `verify oci://` and `pull` took the first
    attached signature the policy accepted, so a trusted signature under a denied name
    was passed over when the same signer had attached another under an allowed one."""
    reg, ca, d = world["reg"], world["ca"], world["dir"]
    local = write_small_model(tmp_path / "twonames")
    r.push_modelpack(reg, "models/twonames", "v1", local, client="http")
    ref = f"oci://{reg.host}/models/twonames:v1"
    for name in ("scraped-web-llm", "llama-ok"):
        out = ms("sign", ref, "--key", d / "publisher.key", "--name", name,
                 "--signature", tmp_path / f"{name}.sig", *ca, "-q")
        assert out.returncode == 0, out.stderr
    policy = tmp_path / "policy.toml"
    policy.write_text((d / "policy.toml").read_text().replace(
        "publisher.key.pub", str(d / "publisher.key.pub")).replace(
        "builder.key.pub", str(d / "builder.key.pub")).replace(
        "curator.key.pub", str(d / "curator.key.pub"))
        + '[models]\ndeny = ["name:scraped-*"]\n')
    out = ms("verify", ref, "--policy", policy, *ca, "-q", "--json")
    assert out.returncode == 1, out.stdout + out.stderr
    assert json.loads(out.stdout)["error"]["kind"] == "denied", out.stdout
    out = ms("pull", ref, tmp_path / "pulled", "--policy", policy, *ca, "-q")
    assert out.returncode == 1, out.stdout + out.stderr
    assert not (tmp_path / "pulled").exists()
    # The allowed name alone still verifies: the rule, not the second signature, refuses.
    out = ms("verify", ref, "--policy", policy, "--signature", tmp_path / "llama-ok.sig", *ca, "-q")
    assert out.returncode == 0, out.stdout + out.stderr

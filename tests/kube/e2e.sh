#!/usr/bin/env bash
# End to end with a real Kubernetes API server (1.20, built from Debian's source; see
# build-apiserver.sh) and etcd, all on 127.0.0.1: the deploy/ manifests pass
# `kubectl apply --dry-run=client`; `modelseal serve` is registered as a validating
# webhook; a pod naming a verified model is admitted, pods naming an unsigned model, a
# model by an untrusted key and a model trained on a denied dataset are denied with the
# webhook's message; with the webhook stalled (SIGSTOP) the API server's own timeout
# refuses the pod, and the webhook answers again once resumed; after SIGTERM it drains
# and exits 0, and pod creation fails closed. Models named by OCI reference: a Pod whose
# model container's image is a signed ModelPack artifact in a real registry (Debian's
# docker-registry over TLS on 127.0.0.1) is admitted, a tampered copy is denied.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
MODELSEAL=${MODELSEAL:-$ROOT/target/release/modelseal}
APISERVER=$("$ROOT/tests/kube/build-apiserver.sh")
command -v etcd >/dev/null || apt-get install -y etcd-server >/dev/null 2>&1 \
  || { apt-get update >/dev/null && apt-get install -y etcd-server >/dev/null; }
W=$(mktemp -d "${TMPDIR:-/tmp}/modelseal-kube.XXXXXX")
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
cd "$W"
say() { printf '\n[kube-e2e] %s\n' "$*"; }
fail() { printf '[kube-e2e] FAIL: %s\n' "$*" >&2; exit 1; }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

say "certificates: a throw-away CA, the API server's and the webhook's serving certificates"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=e2e-ca 2>/dev/null
serving() {  # NAME: a certificate for 127.0.0.1 signed by the CA
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$1" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -out "$1.pem" -days 2 -extfile "$1.ext" 2>/dev/null
}
serving apiserver
serving webhook
serving registry
openssl genrsa -out sa.key 2048 2>/dev/null
openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
TOKEN=$(openssl rand -hex 16)
echo "$TOKEN,admin,admin,system:masters" > tokens.csv

say "etcd and kube-apiserver on 127.0.0.1"
ETCD=$(port); PEER=$(port); API=$(port)
etcd --data-dir "$W/etcd" --listen-client-urls "http://127.0.0.1:$ETCD" --advertise-client-urls "http://127.0.0.1:$ETCD" \
  --listen-peer-urls "http://127.0.0.1:$PEER" > etcd.log 2>&1 &
PIDS+=($!)
"$APISERVER" --etcd-servers="http://127.0.0.1:$ETCD" --bind-address=127.0.0.1 --advertise-address=127.0.0.1 \
  --secure-port="$API" --insecure-port=0 --tls-cert-file=apiserver.pem --tls-private-key-file=apiserver.key \
  --client-ca-file=ca.pem --token-auth-file=tokens.csv --authorization-mode=RBAC \
  --service-account-key-file=sa.pub --service-account-signing-key-file=sa.key \
  --service-account-issuer=https://kubernetes.default.svc --service-cluster-ip-range=10.0.0.0/24 \
  --disable-admission-plugins=ServiceAccount --enable-admission-plugins=ValidatingAdmissionWebhook > apiserver.log 2>&1 &
PIDS+=($!)
export KUBECONFIG=$W/kubeconfig
kubectl config set-cluster e2e --server="https://127.0.0.1:$API" --certificate-authority=ca.pem --embed-certs >/dev/null
kubectl config set-credentials admin --token="$TOKEN" >/dev/null
kubectl config set-context e2e --cluster=e2e --user=admin >/dev/null
kubectl config use-context e2e >/dev/null
for _ in $(seq 1 120); do
  kubectl get --raw /readyz >/dev/null 2>&1 && break
  sleep 1
done
kubectl get --raw /readyz >/dev/null || { tail -20 apiserver.log; fail "the API server did not become ready"; }
echo "API server ready: $(kubectl version -o json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])')"

say "the deploy bundle: every overlay and example builds with kubectl kustomize"
for dir in overlays/directory-store overlays/registry-store examples/model-server examples/cert-manager; do
  kubectl kustomize "$ROOT/deploy/$dir" > "bundle-${dir##*/}.yaml" || fail "kubectl kustomize deploy/$dir"
  echo "deploy/$dir: $(grep -c '^kind:' "bundle-${dir##*/}.yaml") objects"
done
# This API server (1.20) serves PodDisruptionBudget as policy/v1beta1 only; policy/v1
# (1.21) has the same fields the bundle uses, so the budget is checked as v1beta1 here.
for_1_20() { sed 's#^apiVersion: policy/v1$#apiVersion: policy/v1beta1#' "$1"; }
say "the directory-store and registry-store overlays and the watch-sidecar example pass the API server's validation (server dry run)"
kubectl create namespace modelseal >/dev/null
for bundle in directory-store registry-store model-server; do
  for_1_20 "bundle-$bundle.yaml" | kubectl apply --dry-run=server -f - >/dev/null || fail "server dry run of $bundle"
  echo "$bundle: accepted"
done
grep -q 'name: model-watch' bundle-model-server.yaml && grep -q 'name: verify-model' bundle-model-server.yaml \
  || fail "the watch-sidecar component added no sidecar"
# Both hold the volume to the digest the webhook admitted (the pod's annotation).
[ "$(grep -c -- '- \$(MODELSEAL_MODEL)' bundle-model-server.yaml)" = 2 ] \
  && [ "$(grep -c "fieldPath: metadata.annotations\['modelseal.dev/model'\]" bundle-model-server.yaml)" = 2 ] \
  || fail "the sidecar and the init container do not --expect the admitted model"
# cert-manager's kinds are not served here (no cert-manager CRDs on this API server):
# the rest of that example goes to the server, and its certificates are checked here to
# issue the Secret the Deployment mounts, for the Service's name, from the CA it makes.
PY=${MODELSEAL_TEST_PYTHON:-$ROOT/target/interop-venv/bin/python}
"$PY" - bundle-cert-manager.yaml > cert-manager-rest.yaml <<'CHECK' || fail "the cert-manager component"
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
ours = {(d["kind"], d["metadata"]["name"]): d for d in docs if d["apiVersion"] == "cert-manager.io/v1"}
serving = ours[("Certificate", "modelseal-webhook-tls")]["spec"]
assert serving["secretName"] == "modelseal-webhook-tls", serving
assert "modelseal-webhook.modelseal.svc" in serving["dnsNames"], serving
ca_issuer = ours[("Issuer", serving["issuerRef"]["name"])]["spec"]
ca = ours[("Certificate", ca_issuer["ca"]["secretName"])]["spec"]
assert ca["isCA"] and ca["secretName"] == ca_issuer["ca"]["secretName"], ca
assert "selfSigned" in ours[("Issuer", ca["issuerRef"]["name"])]["spec"]
(vwc,) = [d for d in docs if d["kind"] == "ValidatingWebhookConfiguration"]
assert vwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == "modelseal/modelseal-webhook-tls"
(deploy,) = [d for d in docs if d["kind"] == "Deployment"]
mounted = {v["secret"]["secretName"] for v in deploy["spec"]["template"]["spec"]["volumes"] if "secret" in v}
assert "modelseal-webhook-tls" in mounted, mounted
rest = [d for d in docs if d["apiVersion"] != "cert-manager.io/v1"]
print(yaml.safe_dump_all(rest).replace("apiVersion: policy/v1\n", "apiVersion: policy/v1beta1\n"))
CHECK
kubectl apply --dry-run=server -f cert-manager-rest.yaml >/dev/null || fail "server dry run of cert-manager's other objects"
echo "cert-manager: certificates consistent, the rest accepted"

say "a signed dataset and model, a training attestation, a model by an unknown key; the store"
for k in publisher builder curator rogue; do "$MODELSEAL" keygen --out "$k.key" >/dev/null; done
mkdir -p corpus model rogue scraped-web tainted
echo '{"text": "hello"}' > corpus/train.jsonl
echo '{"text": "taken without asking"}' > scraped-web/train.jsonl
head -c 300000 /dev/urandom > model/weights.bin
head -c 300000 /dev/urandom > rogue/weights.bin
head -c 300000 /dev/urandom > tainted/weights.bin
"$MODELSEAL" sign corpus --kind dataset --key curator.key >/dev/null
"$MODELSEAL" sign scraped-web --kind dataset --key curator.key >/dev/null
"$MODELSEAL" sign model --key publisher.key >/dev/null
"$MODELSEAL" sign tainted --key publisher.key >/dev/null
"$MODELSEAL" sign rogue --key rogue.key >/dev/null
"$MODELSEAL" attest training --model model --key builder.key --dataset corpus --builder-id https://ci.example.com/trainer >/dev/null
"$MODELSEAL" attest training --model tainted --key builder.key --dataset scraped-web --builder-id https://ci.example.com/trainer >/dev/null
"$MODELSEAL" store add store corpus.sig scraped-web.sig model.sig tainted.sig rogue.sig \
  model.provenance.sig tainted.provenance.sig >/dev/null
MODEL=$("$MODELSEAL" hash model | cut -d' ' -f1)
ROGUE=$("$MODELSEAL" hash rogue | cut -d' ' -f1)
TAINTED=$("$MODELSEAL" hash tainted | cut -d' ' -f1)
UNSIGNED="blake3:$(printf 'ab%.0s' $(seq 1 32))"
cat > policy.toml <<POLICY
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
POLICY
say "a registry on 127.0.0.1 (docker-registry, TLS): a signed ModelPack model and a tampered copy"
command -v docker-registry >/dev/null || apt-get install -y docker-registry >/dev/null 2>&1 \
  || { apt-get update >/dev/null && apt-get install -y docker-registry >/dev/null; }
REG=127.0.0.1:$(port)
cat > registry.yml <<YAML
version: 0.1
storage:
  filesystem:
    rootdirectory: $W/registry-data
http:
  addr: $REG
  tls:
    certificate: $W/registry.pem
    key: $W/registry.key
YAML
docker-registry serve registry.yml > registry.log 2>&1 &
PIDS+=($!)
for _ in $(seq 1 50); do curl -sf --cacert ca.pem "https://$REG/v2/" >/dev/null && break; sleep 0.2; done
mkdir -p oci-model
head -c 300000 /dev/urandom > oci-model/weights.bin
echo '{"model_type": "e2e"}' > oci-model/config.json
OCI_GOOD=$("$PY" "$ROOT/tests/kube/push_model.py" "$REG" ca.pem models/llm v1 oci-model)
"$MODELSEAL" sign "oci://$REG/models/llm:v1" --key publisher.key --signature oci-model.sig --registry-ca ca.pem -q >/dev/null
"$MODELSEAL" attest training --model oci-model --key builder.key --dataset corpus --builder-id https://ci.example.com/trainer >/dev/null
"$MODELSEAL" store add store oci-model.sig oci-model.provenance.sig >/dev/null
cp -r oci-model oci-tampered
printf 'x' | dd of=oci-tampered/weights.bin bs=1 seek=1000 conv=notrunc 2>/dev/null
OCI_TAMPERED=$("$PY" "$ROOT/tests/kube/push_model.py" "$REG" ca.pem models/llm v1-patched oci-tampered)

HOOK=$(port)
say "deployed from the bundle: the directory-store overlay, with this test's certificate, token, policy and registry CA, applied to the API server"
mkdir -p deploy-e2e && cp -r "$ROOT/deploy" deploy  # kustomize takes relative bases only
cp webhook.pem webhook.key policy.toml publisher.key.pub builder.key.pub curator.key.pub ca.pem deploy-e2e/
openssl rand -hex 16 > deploy-e2e/token
# The overlay's own config.toml, with this machine's listen address (a pod's 0.0.0.0:8443
# may be taken here) and the test registry added before its [limits] table.
python3 - "$ROOT/deploy/overlays/directory-store/config.toml" "$HOOK" "$REG" > deploy-e2e/config.toml <<'PY'
import sys
text, hook, reg = open(sys.argv[1]).read(), sys.argv[2], sys.argv[3]
assert 'listen = "0.0.0.0:8443"' in text and "[limits]" in text
text = text.replace('listen = "0.0.0.0:8443"', f'listen = "127.0.0.1:{hook}"')
extra = f'registry_ca = "/etc/modelseal/registry-ca/ca.pem"\noci_registries = ["{reg}"]\n\n'
print(text.replace("[limits]", extra + "[limits]", 1), end="")
PY
cat > deploy-e2e/kustomization.yaml <<KUSTOMIZATION
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../deploy/overlays/directory-store
configMapGenerator:
  - {name: modelseal-webhook, namespace: modelseal, behavior: replace, files: [config.toml]}
  - name: modelseal-policy
    namespace: modelseal
    behavior: replace
    files: [policy.toml, publisher.key.pub, builder.key.pub, curator.key.pub]
  - {name: modelseal-registry-ca, namespace: modelseal, files: [ca.pem]}
secretGenerator:
  - name: modelseal-webhook-tls
    namespace: modelseal
    type: kubernetes.io/tls
    files: [tls.crt=webhook.pem, tls.key=webhook.key]
  - {name: modelseal-admit-token, namespace: modelseal, files: [token]}
patches:
  # No cluster DNS or Service routing here: the API server calls the webhook's address.
  - target: {kind: ValidatingWebhookConfiguration, name: modelseal}
    patch: |-
      - {op: remove, path: /webhooks/0/clientConfig/service}
      - {op: add, path: /webhooks/0/clientConfig/url, value: "https://127.0.0.1:$HOOK/validate"}
      - {op: replace, path: /webhooks/0/clientConfig/caBundle, value: "$(base64 -w0 ca.pem)"}
  - target: {kind: Deployment, name: modelseal-webhook}
    patch: |-
      - op: add
        path: /spec/template/spec/volumes/-
        value: {name: registry-ca, configMap: {name: modelseal-registry-ca}}
      - op: add
        path: /spec/template/spec/containers/0/volumeMounts/-
        value: {name: registry-ca, mountPath: /etc/modelseal/registry-ca, readOnly: true}
KUSTOMIZATION
kubectl kustomize deploy-e2e | for_1_20 /dev/stdin > deployed.yaml
kubectl apply -f deployed.yaml
say "the webhook container run as the kubelet would: its volumes read back from the API server, the binary and its libraries in a root of their own, chroot as 65532"
rootfs=$W/rootfs
mkdir -p "$rootfs/usr/local/bin" "$rootfs/tmp" && chmod 1777 "$rootfs/tmp"
cp "$MODELSEAL" "$rootfs/usr/local/bin/modelseal"
for lib in $(ldd "$MODELSEAL" | grep -o '/[^ ]*'); do
  mkdir -p "$rootfs$(dirname "$lib")" && cp -L "$lib" "$rootfs$lib"
done
spec=$(python3 "$ROOT/tests/kube/kubelet.py" modelseal modelseal-webhook webhook "$rootfs" --pvc "modelseal-store=$W/store")
mapfile -t hook_args < <(python3 -c 'import json,sys; print("\n".join(json.loads(sys.argv[1])["args"]))' "$spec")
echo "container args: ${hook_args[*]}"
chroot --userspec=65532:65532 "$rootfs" /usr/local/bin/modelseal "${hook_args[@]}" > webhook.log 2>&1 &
HOOK_PID=$!
PIDS+=($HOOK_PID)
for _ in $(seq 1 50); do curl -sf --cacert ca.pem "https://127.0.0.1:$HOOK/readyz" >/dev/null && break; sleep 0.2; done
curl -sf --cacert ca.pem "https://127.0.0.1:$HOOK/readyz" >/dev/null || { cat webhook.log; fail "the deployed webhook is not ready"; }
kubectl get validatingwebhookconfiguration modelseal -o jsonpath='{.webhooks[0].failurePolicy} {.webhooks[0].clientConfig.url}{"\n"}'
kubectl create namespace ml >/dev/null
kubectl label namespace ml modelseal.dev/enforce=true >/dev/null
sleep 2  # the API server picks up new webhook configurations asynchronously

pod() {  # NAME DIGEST: kubectl create a pod naming the model
  cat <<POD | kubectl create -n ml -f - 2>&1
apiVersion: v1
kind: Pod
metadata:
  name: $1
  annotations:
    modelseal.dev/model: "$2"
spec:
  automountServiceAccountToken: false
  containers:
    - name: server
      image: registry.example.com/inference:1
POD
}

say "a pod naming the verified model is admitted"
out=$(pod verified "$MODEL") || fail "verified model refused: $out"
echo "$out"
say "a pod naming an unsigned model is denied with the webhook's message"
if out=$(pod unsigned "$UNSIGNED"); then fail "unsigned model admitted: $out"; fi
echo "$out"
grep -q 'denied the request' <<<"$out" && grep -q 'attestation is in the store' <<<"$out" || fail "unexpected denial: $out"
say "a pod naming a model signed by an untrusted key is denied"
if out=$(pod rogue "$ROGUE"); then fail "untrusted signer admitted: $out"; fi
echo "$out"
grep -q 'not signed by a trusted model-publisher' <<<"$out" || fail "unexpected denial: $out"
say "a pod naming a model trained on a denied dataset is denied, naming the dataset"
if out=$(pod tainted "$TAINTED"); then fail "model trained on a denied dataset admitted: $out"; fi
echo "$out"
grep -q 'dataset scraped-web' <<<"$out" && grep -q 'name:scraped-\*' <<<"$out" || fail "unexpected denial: $out"
oci_pod() {  # NAME IMAGE: a pod whose model container runs a model image
  cat <<POD | kubectl create -n ml -f - 2>&1
apiVersion: v1
kind: Pod
metadata:
  name: $1
  annotations:
    modelseal.dev/model-containers: modelcar
spec:
  automountServiceAccountToken: false
  containers:
    - name: server
      image: registry.example.com/inference:1
    - name: modelcar
      image: $2
POD
}
say "a pod whose model container is the signed model in the registry, by digest, is admitted"
out=$(oci_pod oci-signed "$REG/models/llm@$OCI_GOOD") || fail "signed OCI model refused: $out"
echo "$out"
say "the same model by tag is denied: the kubelet would pull the tag later, and tags move"
if out=$(oci_pod oci-by-tag "$REG/models/llm:v1"); then fail "model admitted by tag: $out"; fi
echo "$out"
grep -q 'name the model by digest' <<<"$out" || fail "unexpected denial: $out"
say "a pod running the tampered copy (one byte changed, pushed under another tag) is denied"
if out=$(oci_pod oci-tampered "$REG/models/llm@$OCI_TAMPERED"); then fail "tampered OCI model admitted: $out"; fi
echo "$out"
grep -q 'no model-publisher signature' <<<"$out" || fail "unexpected denial: $out"
say "a pod naming a manifest nobody signed is denied (a reference by digest needs no request)"
if out=$(oci_pod oci-missing "$REG/models/llm@sha256:$(printf '00%.0s' $(seq 1 32))"); then fail "missing OCI model admitted: $out"; fi
echo "$out"
grep -q 'no model-publisher signature' <<<"$out" || fail "unexpected denial: $out"
say "with the webhook stalled (SIGSTOP), the API server's timeout refuses the pod"
kill -STOP "$HOOK_PID"
started=$(date +%s)
if out=$(pod while-stalled "$MODEL"); then kill -CONT "$HOOK_PID"; fail "admitted with the webhook stalled: $out"; fi
took=$(( $(date +%s) - started ))
kill -CONT "$HOOK_PID"
echo "$out"
echo "refused after ${took} s (timeoutSeconds: 5)"
grep -qi 'failed calling webhook' <<<"$out" || fail "unexpected error: $out"
grep -qiE 'deadline exceeded|timeout' <<<"$out" || fail "not the timeout path: $out"
[ "$took" -ge 4 ] && [ "$took" -le 20 ] || fail "the timeout took ${took} s"
say "resumed, the webhook admits the verified model again"
out=$(pod after-stall "$MODEL") || fail "verified model refused after the stall: $out"
echo "$out"
say "SIGTERM: the webhook drains and exits 0; then pod creation fails closed"
kill -TERM "$HOOK_PID"
rc=0; wait "$HOOK_PID" || rc=$?
[ "$rc" = 0 ] || fail "modelseal serve exited $rc after SIGTERM"
grep -q '"event":"stopped"' webhook.log || fail "no stopped event in the log"
if out=$(pod while-down "$MODEL"); then fail "admitted with the webhook down: $out"; fi
echo "$out"
grep -qi 'failed calling webhook' <<<"$out" || fail "unexpected error: $out"
say "decisions the webhook logged"
grep -m 5 '"event":"admission"' webhook.log
say "PASS"

#!/usr/bin/env bash
# The whole test suite, as the README gives it and CI runs it. Installs what it needs
# (a Python venv for the independent spec checker) and needs nothing else but the
# Rust toolchain (with rustfmt and clippy) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }
disk() { df -h --output=avail,target . | tail -1 | awk '{print "disk free: " $1 " on " $2}'; }

# CI's fresh machine can be short of disk: no incremental caches there (they only help
# rebuilds), and the debug build is dropped before the fuzzers are built (see below).
[ -n "${CI:-}" ] && export CARGO_INCREMENTAL=0
disk

step "format"
cargo fmt --all -- --check

step "system packages the tests use"
# curl is the real HTTP/2 client of the admission server's tests (and the kube e2e test's);
# SoftHSM2 is the PKCS#11 token and OpenSC's pkcs11-tool makes keys in it; swtpm is the
# TPM, tpm2-tools makes its keys, and libtss2-dev (with pkg-config) is what the `tpm`
# feature links.
need=()
command -v curl >/dev/null || need+=(curl)
[ -e /usr/lib/softhsm/libsofthsm2.so ] || need+=(softhsm2)
command -v pkcs11-tool >/dev/null || need+=(opensc)
command -v swtpm >/dev/null || need+=(swtpm)
command -v tpm2_createprimary >/dev/null || need+=(tpm2-tools)
command -v pkg-config >/dev/null || need+=(pkg-config)
pkg-config --exists tss2-esys 2>/dev/null || need+=(libtss2-dev)
ls /usr/lib/*/libtss2-tcti-swtpm.so* >/dev/null 2>&1 || need+=(libtss2-tcti-swtpm0)
if [ ${#need[@]} -gt 0 ]; then
  apt-get install -y "${need[@]}" >/dev/null 2>&1 \
    || { apt-get update >/dev/null && apt-get install -y "${need[@]}" >/dev/null; }
fi
# The debug build (cargo test) has the TPM; lint and the release binary, which the Python
# suites drive, also have AWS KMS (`kms`): the AWS SDK is slow to build, so it is built
# once, in release, and tested from Python against moto's KMS (tests/interop/test_kms.py).
features=(--features modelseal-cli/tpm)
release_features=(--features modelseal-cli/tpm,modelseal-cli/kms)

step "lint"
cargo clippy --workspace --all-targets --locked "${release_features[@]}" -- -D warnings

step "unit, property, vector and CLI end-to-end tests"
cargo test --workspace --locked "${features[@]}"

step "fuzz corpora, every file replayed through its target (stable)"
fuzz=(--manifest-path fuzz/Cargo.toml --no-default-features --target-dir target --locked)
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
cargo clippy "${fuzz[@]}" --all-targets -- -D warnings
cargo test "${fuzz[@]}"

step "the admission benchmark program still builds (it is run by bench/admission/run.sh, not here)"
bench=(--manifest-path bench/admission/Cargo.toml --target-dir target --locked)
cargo fmt --manifest-path bench/admission/Cargo.toml -- --check
cargo clippy "${bench[@]}" --all-targets -- -D warnings

step "spec vectors, checked independently of the Rust code"
venv=target/spec-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r spec/vectors/requirements.txt
"$venv/bin/python" spec/vectors/check_vectors.py

step "the loader crate stays light: no async runtime, HTTP client, TOML or globs; no C crypto by default"
light() {  # PATTERN [CARGO-TREE-FLAGS]: the forbidden crates among modelseal-verify's dependencies
  local pattern=$1
  shift
  cargo tree -p modelseal-verify --edges normal --prefix none --locked "$@" \
    | grep -E "^($pattern) " | sort -u || true
}
heavy=$(light 'tokio|hyper|reqwest|ring|aws-lc-sys|openssl-sys|native-tls|toml|glob')
keyless=$(light 'tokio|hyper|reqwest|native-tls' --features sigstore)
if [ -n "$heavy$keyless" ]; then
  printf 'modelseal-verify depends on:\n%s\n%s\n' "$heavy" "$keyless" >&2
  exit 1
fi
cargo check -p modelseal-verify --locked --quiet

step "demo (release build), as the README runs it"
cargo run --release --locked --quiet "${release_features[@]}" -- demo

step "crates ready to publish: rustdoc with warnings denied, cargo package, and cargo install both from the checkout and from the packaged crates"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet "${release_features[@]}"
# Packaged without cargo's own verify build: the install below builds the packaged crates,
# each from its .crate contents alone, which is that build and more.
rm -rf target/package
cargo package --workspace --exclude modelseal-python --locked --no-verify --allow-dirty --quiet
packaged=()  # crates.io is where the packaged CLI would find its modelseal-* dependencies
for crate in target/package/modelseal-*-0.1.0.crate; do
  tar -xzf "$crate" -C target/package
  name=$(basename "$crate" -0.1.0.crate)
  packaged+=(--config "patch.crates-io.$name.path=\"$PWD/target/package/$name-0.1.0\"")
done
# In the dev profile with the test build's features, and with the workspace's profile
# settings (which a packaged crate does not carry): every dependency built for the tests
# is reused, and only the nine packaged crates compile. The release binary's `kms` is
# covered by the checkout's install below and the KMS tests.
cargo install --quiet --locked --debug --target-dir target --root target/install-packaged \
  --path target/package/modelseal-cli-0.1.0 --features tpm "${packaged[@]}" \
  --config 'profile.dev.debug="line-tables-only"' --config 'profile.dev.package."*".debug=false'
# The release build the demo step made, installed.
cargo install --quiet --locked --target-dir target --root target/install \
  --path crates/modelseal-cli --features tpm,kms
for bin in target/install/bin/modelseal target/install-packaged/bin/modelseal; do
  "$bin" --version
  "$bin" demo >/dev/null
done
# A packaged crate has no git checkout: it names no commit.
target/install-packaged/bin/modelseal --version | grep -q '(commit unknown)'

step "a local Sigstore instance (@sigstore/mock from npm) for the keyless tests, checked"
(cd tests/sigstore-local && npm ci --no-audit --no-fund --loglevel=error && npm test --silent)

step "the Python package as users get it: an abi3 manylinux wheel (maturin), checked by auditwheel, installed into a clean venv with no Rust toolchain on PATH and tested there (files written by the safetensors package, keyless signers, the wheel's own modelseal command)"
bvenv=target/build-venv
if [ ! -x "$bvenv/bin/python" ]; then
  python3 -m venv "$bvenv"
fi
"$bvenv/bin/pip" install --quiet --disable-pip-version-check -r crates/modelseal-python/requirements-build.txt
rm -rf target/wheels
"$bvenv/bin/maturin" build --release --locked --quiet -m crates/modelseal-python/Cargo.toml --out target/wheels
wheel=$(ls target/wheels/modelseal-*.whl)
echo "built $wheel ($(du -h "$wheel" | cut -f1))"
audit=$("$bvenv/bin/auditwheel" show "$wheel")
echo "$audit"
tr -s ' \n' ' ' <<<"$audit" | grep -q 'is consistent with the following platform tag: "manylinux_' \
  || { echo "auditwheel finds the wheel not manylinux" >&2; exit 1; }
pvenv=target/wheel-venv
rm -rf "$pvenv"
python3 -m venv "$pvenv"
# What a user's machine has: the venv, the system's directories, no cargo and no rustc.
clean_path="$PWD/$pvenv/bin:/usr/local/bin:/usr/bin:/bin"
for tool in cargo rustc maturin; do
  if PATH=$clean_path command -v "$tool" >/dev/null; then
    echo "the clean PATH still has $tool: $(PATH=$clean_path command -v "$tool")" >&2
    exit 1
  fi
done
PATH=$clean_path "$pvenv/bin/pip" install --quiet --disable-pip-version-check "$wheel" \
  -r crates/modelseal-python/requirements-test.txt
PATH=$clean_path "$pvenv/bin/python" - <<'PY'
import os, sys
import modelseal
assert modelseal.__file__.startswith(sys.prefix), f"modelseal imported from {modelseal.__file__}"
man = os.path.join(sys.prefix, "share/man/man1/modelseal.1")
assert os.path.isfile(man), f"no man page at {man}"
print(f"modelseal imported from {modelseal.__file__}; man pages in {os.path.dirname(man)}")
PY
PATH=$clean_path "$pvenv/bin/modelseal" --version
PATH=$clean_path MODELSEAL="$PWD/$pvenv/bin/modelseal" \
  "$pvenv/bin/python" -m pytest -q -p no:cacheprovider crates/modelseal-python/tests

step "OMS interoperability with model-signing 1.1.1 (PyPI), both ways; keyless against the local Sigstore"
ivenv=target/interop-venv
if [ ! -x "$ivenv/bin/python" ]; then
  python3 -m venv "$ivenv"
fi
"$ivenv/bin/pip" install --quiet --disable-pip-version-check -r tests/interop/requirements.txt
MODELSEAL=target/release/modelseal "$ivenv/bin/python" -m pytest -q tests/interop

step "every command line the README shows, run against the binary (tests/readme/check_readme.py)"
MODELSEAL=target/release/modelseal MODEL_SIGNING="$PWD/$ivenv/bin/model_signing" \
  python3 tests/readme/check_readme.py

step "AI-BOMs from a verified lineage, checked by CycloneDX's schema (cyclonedx-python-lib) and SPDX's own bindings (spdx-python-model)"
bvenv=target/bom-venv
if [ ! -x "$bvenv/bin/python" ]; then
  python3 -m venv "$bvenv"
fi
"$bvenv/bin/pip" install --quiet --disable-pip-version-check -r tests/bom/requirements.txt
# SPDX's SHACL shapes are on no registry CI reaches: with SPDX_3_DIR set (a copy of the
# spdx.org 3.0.1 files), spdx3-validate checks them too; otherwise that test is skipped.
MODELSEAL=target/release/modelseal "$bvenv/bin/python" -m pytest -q -rs -p no:cacheprovider tests/bom

step "verified loading through torch, transformers, sentence-transformers and a Hugging Face cache (PyPI packages)"
# torch brings ~3 GB of CUDA libraries: the venv is kept between runs on one machine,
# keyed by the requirements' hash, and marked complete only once pip has finished.
freq=tests/frameworks/requirements.txt
fcache=${MODELSEAL_VENV_CACHE:-/var/cache/modelseal}
mkdir -p "$fcache" 2>/dev/null && [ -w "$fcache" ] || fcache=$PWD/target
fvenv="$fcache/frameworks-venv-$(sha256sum "$freq" | cut -c1-16)"
if [ ! -e "$fvenv/.complete" ]; then
  rm -rf "$fvenv"
  python3 -m venv "$fvenv"
  start=$SECONDS
  "$fvenv/bin/pip" install --quiet --disable-pip-version-check -r "$freq"
  touch "$fvenv/.complete"
  echo "installed the framework venv in $((SECONDS - start)) s ($(du -sh "$fvenv" | cut -f1))"
fi
# The wheel built above, not a develop build; its console script is the CLI the tests run.
"$fvenv/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps "$wheel"
MODELSEAL="$fvenv/bin/modelseal" MODEL_SIGNING_PYTHON="$PWD/$ivenv/bin/python" \
  "$fvenv/bin/python" -m pytest -q -p no:cacheprovider tests/frameworks

step "models in a real OCI registry (Debian's docker-registry, TLS on loopback), pushed by oras, buildah and raw HTTP"
need=()
for tool in docker-registry skopeo buildah b3sum; do
  command -v "$tool" >/dev/null || need+=("$tool")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get install -y "${need[@]}" >/dev/null 2>&1 \
    || { apt-get update >/dev/null && apt-get install -y "${need[@]}" >/dev/null; }
fi
MODELSEAL=target/release/modelseal "$ivenv/bin/python" -m pytest -q tests/oci

step "layers, keys and certificates read as their real readers read them: GNU tar, Python tarfile, Go archive/tar, umoci, OpenSSL, pyca/cryptography (differential, generated inputs)"
need=()
command -v go >/dev/null || need+=(golang-go)
command -v zstd >/dev/null || need+=(zstd)
command -v umoci >/dev/null || need+=(umoci)
if [ ${#need[@]} -gt 0 ]; then
  apt-get install -y "${need[@]}" >/dev/null 2>&1 \
    || { apt-get update >/dev/null && apt-get install -y "${need[@]}" >/dev/null; }
fi
cargo build --release --locked --quiet --examples -p modelseal-oci -p modelseal-core -p modelseal-verify
(cd tests/formats/gotar && GOFLAGS=-mod=mod GOCACHE="$PWD/../../../target/go-cache" go build -o ../../../target/gotar .)
fvenv2=target/formats-venv
[ -x "$fvenv2/bin/python" ] || python3 -m venv "$fvenv2"
"$fvenv2/bin/pip" install --quiet --disable-pip-version-check -r tests/formats/requirements.txt
(cd tests/formats && "../../$fvenv2/bin/python" -m pytest -q .)

step "watch under attack: random hostile operations against a real model, an independent oracle every 50 ms (spec/watch.md §0)"
python3 tests/watch/adversarial.py --seconds "${MODELSEAL_WATCH_ATTACK_SECONDS:-45}"
# The harness can fail: the same attacks against a watch with leases, events and the
# stat poll turned off must find it ready over tampered bytes.
weak=$(python3 tests/watch/adversarial.py --seconds 20 --seed 7 --watch-flag=--no-leases \
    --watch-flag=--no-events --watch-flag=--stat-interval=0 2>&1 || true)
if ! grep -q "FAILED: watch said ready" <<<"$weak"; then
  printf 'the adversarial harness did not catch a weakened watch:\n%s\n' "$weak" >&2
  exit 1
fi

step "admission end to end with a real Kubernetes API server (built once, then cached)"
if [ "${MODELSEAL_SKIP_KUBE:-}" = 1 ]; then
  echo "notice: MODELSEAL_SKIP_KUBE=1, skipping the Kubernetes end-to-end test"
else
  MODELSEAL="$PWD/target/release/modelseal" tests/kube/e2e.sh
fi

step "every fuzzer briefly, where the nightly toolchain is installed"
# Every step that needed the debug build has run; on CI give its disk to the fuzz build.
[ -n "${CI:-}" ] && rm -rf target/debug
disk
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet
  # New inputs go to a scratch corpus, so a run leaves the committed one as it was.
  FUZZ_SCRATCH=1 JOBS=2 fuzz/run.sh "${MODELSEAL_FUZZ_SECONDS:-12}"
else
  echo "notice: no nightly toolchain; the fuzzers did not run (their corpora were replayed)"
fi

printf '\nall tests passed\n'

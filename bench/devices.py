"""Signing with a key in a device: file key vs SoftHSM2 (PKCS#11) vs swtpm (TPM 2.0) vs an
AWS KMS endpoint (moto on loopback, plain HTTP), and model_signing 1.1.1 with the same
SoftHSM2 key, side by side on one 2 GiB model.

A device signs once per model (the DSSE envelope), so each device should cost the file-key
time plus a constant: this script reports the medians and those constants. Runs are
interleaved (file, pkcs11, tpm, awskms, peer, file, ...). The TPM is swtpm on loopback (a
software TPM: a hardware TPM's ECDSA takes tens of milliseconds more).

    MODELSEAL=target/release/modelseal target/interop-venv/bin/python bench/devices.py

Needs softhsm2, opensc, swtpm, tpm2-tools (tests/run.sh installs them) and a modelseal built
with `--features modelseal-cli/tpm,modelseal-cli/kms`, run from the interop venv (moto, boto3). Settings: SHARDS (default 4), SHARD_MIB (512),
REPS (5), FORMAT (native or oms; default native), OUT (a JSON results file).
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODELSEAL = Path(os.environ.get("MODELSEAL", REPO / "target/release/modelseal")).resolve()
PEER = Path(sys.executable).parent / "model_signing"
SHARDS = int(os.environ.get("SHARDS", "4"))
SHARD_MIB = int(os.environ.get("SHARD_MIB", "512"))
REPS = int(os.environ.get("REPS", "5"))
FORMAT = os.environ.get("FORMAT", "native")
MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "135790"


def run(cmd, env, cwd=None) -> None:
    result = subprocess.run([str(c) for c in cmd], env=env, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"failed: {cmd}\n{result.stdout}\n{result.stderr}")


def timed(cmd, env) -> float:
    started = time.perf_counter()
    run(cmd, env)
    return time.perf_counter() - started


def free_port_pair() -> int:
    while True:
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", port + 1))
                    return port
                except OSError:
                    continue


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="devices-bench-") as tmp:
        tmp = Path(tmp)
        env = dict(os.environ, SOFTHSM2_CONF=str(tmp / "softhsm2.conf"), MODELSEAL_PKCS11_PIN=PIN)
        (tmp / "tokens").mkdir()
        (tmp / "softhsm2.conf").write_text(f"directories.tokendir = {tmp / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
        run(["softhsm2-util", "--init-token", "--free", "--label", "bench", "--pin", PIN, "--so-pin", "24682468"], env)
        run(["pkcs11-tool", "--module", MODULE, "--token-label", "bench", "--login", "--pin", PIN,
             "--keypairgen", "--key-type", "EC:prime256v1", "--label", "p256", "--id", "01"], env)

        port = free_port_pair()
        (tmp / "tpm").mkdir()
        swtpm = subprocess.Popen(["swtpm", "socket", "--tpm2", "--flags", "not-need-init,startup-clear",
                                  "--tpmstate", f"dir={tmp / 'tpm'}",
                                  "--server", f"type=tcp,port={port},bindaddr=127.0.0.1",
                                  "--ctrl", f"type=tcp,port={port + 1},bindaddr=127.0.0.1"])
        kms_port = free_port_pair()
        kms = subprocess.Popen([sys.executable, str(REPO / "tests/interop/kms_double.py"), str(kms_port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        env.update(AWS_ACCESS_KEY_ID="AKIDBENCH", AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="us-east-1",
                   AWS_EC2_METADATA_DISABLED="true", AWS_ENDPOINT_URL_KMS=f"http://127.0.0.1:{kms_port}")
        try:
            time.sleep(0.5)
            import boto3
            for _ in range(100):
                try:
                    client = boto3.client("kms", endpoint_url=env["AWS_ENDPOINT_URL_KMS"], region_name="us-east-1",
                                          aws_access_key_id="AKIDBENCH", aws_secret_access_key="bench")
                    key_id = client.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"]["KeyId"]
                    break
                except Exception:  # the double is still starting
                    time.sleep(0.2)
            else:
                raise SystemExit("the KMS double did not start")
            client.create_alias(AliasName="alias/bench", TargetKeyId=key_id)
            tenv = dict(env, TPM2TOOLS_TCTI=f"swtpm:host=127.0.0.1,port={port}")
            for cmd in (["tpm2_createprimary", "-C", "o", "-G", "ecc256", "-c", "primary.ctx", "-Q"],
                        ["tpm2_flushcontext", "-t"],
                        ["tpm2_create", "-C", "primary.ctx", "-G", "ecc256:ecdsa-sha256", "-u", "k.pub", "-r", "k.priv", "-Q"],
                        ["tpm2_flushcontext", "-t"],
                        ["tpm2_load", "-C", "primary.ctx", "-u", "k.pub", "-r", "k.priv", "-c", "k.ctx", "-Q"],
                        ["tpm2_evictcontrol", "-C", "o", "-c", "k.ctx", "0x81000020", "-Q"],
                        ["tpm2_flushcontext", "-t"]):
                run(cmd, tenv, cwd=tmp)

            model = tmp / "model"
            model.mkdir()
            chunk = os.urandom(1 << 20)
            for i in range(SHARDS):
                with open(model / f"model-{i:05}.safetensors", "wb") as f:
                    for _ in range(SHARD_MIB):
                        f.write(chunk)
            (model / "config.json").write_text("{}")
            run([MODELSEAL, "keygen", "--algorithm", "ecdsa-p256", "--out", tmp / "file.key"], env)

            pkcs11 = f"pkcs11:token=bench;object=p256?module-path={MODULE}"
            tpm = f"tpm:handle=0x81000020?tcti=swtpm:host=127.0.0.1,port={port}"
            signers = {
                "file": [MODELSEAL, "sign", model, "--format", FORMAT, "--key", tmp / "file.key"],
                "pkcs11": [MODELSEAL, "sign", model, "--format", FORMAT, "--key", pkcs11],
                "tpm": [MODELSEAL, "sign", model, "--format", FORMAT, "--key", tpm],
                "awskms": [MODELSEAL, "sign", model, "--format", FORMAT, "--key", "awskms:///alias/bench"],
            }
            peer = [PEER, "sign", "pkcs11-key", "--signature", tmp / "peer.sig",
                    "--pkcs11_uri", f"{pkcs11}&pin-value={PIN}", model]
            times = {name: [] for name in [*signers, "model_signing pkcs11"]}
            # One warm-up of each, so the page cache holds the model for every run.
            for name, cmd in signers.items():
                run([*cmd, "--signature", tmp / f"{name}.sig", "--force", "-q"], env)
            for _ in range(REPS):
                for name, cmd in signers.items():
                    times[name].append(timed([*cmd, "--signature", tmp / f"{name}.sig", "--force", "-q"], env))
                times["model_signing pkcs11"].append(timed(peer, env))
        finally:
            swtpm.terminate()
            swtpm.wait()
            kms.terminate()
            kms.wait()

    medians = {name: statistics.median(t) for name, t in times.items()}
    size_gib = SHARDS * SHARD_MIB / 1024
    print(f"signing a {size_gib:.1f} GiB model ({SHARDS} x {SHARD_MIB} MiB), format {FORMAT}, median of {REPS}")
    for name, median in medians.items():
        extra = ""
        if name in ("pkcs11", "tpm", "awskms"):
            extra = f"  (file key + {1000 * (median - medians['file']):.0f} ms)"
        print(f"  {name:22} {median:7.3f} s{extra}")
    print(f"  model_signing pkcs11 / modelseal pkcs11: {medians['model_signing pkcs11'] / medians['pkcs11']:.1f}x")
    if out := os.environ.get("OUT"):
        Path(out).write_text(json.dumps({"format": FORMAT, "gib": size_gib, "reps": REPS, "seconds": times,
                                         "medians": medians}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

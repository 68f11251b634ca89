"""modelseal.torch and modelseal.numpy against files written by the safetensors package,
read back by safetensors itself: every dtype, slices, devices, OMS signatures, bytes in
memory, and what an attacker can change on disk (spec/loading.md §5)."""
import threading

import numpy as np
import pytest
import torch
from safetensors.torch import load_file as plain_load_file
from safetensors.torch import save_file

import modelseal
import modelseal.numpy as msnp
import modelseal.torch as mst
from conftest import flip, run


def every_dtype():
    g = torch.Generator().manual_seed(3)
    f = torch.randn(64, 48, generator=g)
    tensors = {
        "f32": f,
        "f16": f.half(),
        "bf16": f.bfloat16(),
        "f64": f.double()[:8],
        "c64": torch.randn(4, 4, dtype=torch.complex64, generator=g),
        "i8": torch.randint(-128, 127, (33,), dtype=torch.int8, generator=g),
        "u8": torch.randint(0, 255, (7, 5), dtype=torch.uint8, generator=g),
        "i16": torch.randint(-999, 999, (9,), dtype=torch.int16, generator=g),
        "i32": torch.arange(12, dtype=torch.int32).reshape(3, 4),
        "i64": torch.arange(10, dtype=torch.int64),
        "u16": torch.arange(6, dtype=torch.int32).to(torch.uint16),
        "u32": torch.arange(6, dtype=torch.int64).to(torch.uint32),
        "u64": torch.arange(6, dtype=torch.int64).to(torch.uint64),
        "bool": torch.tensor([True, False, True]),
        "f8_e4m3": f[:16].to(torch.float8_e4m3fn),
        "f8_e5m2": f[:16].to(torch.float8_e5m2),
        "f8_e4m3fnuz": f[:4].to(torch.float8_e4m3fnuz),
        "f8_e5m2fnuz": f[:4].to(torch.float8_e5m2fnuz),
        "f8_e8m0": f.abs()[:4].to(torch.float8_e8m0fnu),
        "f4": torch.randint(0, 255, (6, 4), dtype=torch.uint8, generator=g).view(torch.float4_e2m1fn_x2),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 3),
        "big": torch.randn(300, 1024, generator=g),  # 1.2 MB: many 64 KiB groups
    }
    return tensors


def same(a, b):
    """Bit-for-bit equality, for dtypes torch cannot compare directly."""
    assert a.dtype == b.dtype and a.shape == b.shape, (a.dtype, b.dtype, a.shape, b.shape)
    return torch.equal(a.contiguous().view(-1).view(torch.uint8), b.contiguous().view(-1).view(torch.uint8)) \
        if a.numel() and a.dtype != torch.bool else torch.equal(a, b)


@pytest.fixture(params=["native", "native+outboard", "oms-files", "oms-shards"])
def model(request, tmp_path, keys):
    key, pub, _ = keys
    m = tmp_path / "model"
    m.mkdir()
    save_file(every_dtype(), str(m / "model.safetensors"), metadata={"format": "pt"})
    (m / "config.json").write_text('{"layers": 2}')
    args = {
        "native": [],
        "native+outboard": ["--outboard"],
        "oms-files": ["--format", "oms"],
        "oms-shards": ["--format", "oms", "--method", "shards", "--shard-size", str(256 << 10)],
    }[request.param]
    run("sign", m, "--key", key, *args)
    return request.param, m, tmp_path / "model.sig", pub


def test_every_dtype_reads_as_the_safetensors_package_reads_it(model):
    kind, m, sig, pub = model
    path = m / "model.safetensors"
    theirs = plain_load_file(str(path))
    with mst.safe_open(path, "pt", signature=sig, key=pub) as f:
        assert f.signature_format == ("native" if kind.startswith("native") else "oms")
        assert sorted(f.keys()) == sorted(theirs)
        assert f.metadata() == {"format": "pt"}
        for name, expected in theirs.items():
            assert same(f.get_tensor(name), expected), name
    ours = mst.load_file(path, signature=sig, key=pub)
    assert ours.keys() == theirs.keys()
    for name in theirs:
        assert same(ours[name], theirs[name]), name
    data = path.read_bytes()
    for name, tensor in mst.load(data, signature=sig, key=pub, name="model.safetensors").items():
        assert same(tensor, theirs[name]), name


def test_numpy_reads_bf16_and_f8_through_ml_dtypes_and_refuses_packed_f4(model):
    _, m, sig, pub = model
    theirs = plain_load_file(str(m / "model.safetensors"))
    with msnp.safe_open(m / "model.safetensors", signature=sig, key=pub) as f:
        for name in ("bf16", "f8_e4m3", "f8_e5m2", "f32", "c64", "u64"):
            array = f.get_tensor(name)
            assert array.tobytes() == theirs[name].contiguous().view(torch.uint8).numpy().tobytes(), name
        assert str(f.get_tensor("bf16").dtype) == "bfloat16"
        with pytest.raises(TypeError):
            f.get_tensor("f4")


def test_slices_read_rows_and_match_torch_indexing(model):
    _, m, sig, pub = model
    theirs = plain_load_file(str(m / "model.safetensors"))
    with mst.safe_open(m / "model.safetensors", "pt", signature=sig, key=pub) as f:
        s = f.get_slice("big")
        assert s.get_shape() == [300, 1024] and s.get_dtype() == "F32"
        big = theirs["big"]
        for index in (slice(10, 20), (slice(5, 9), slice(3, 7)), Ellipsis, (slice(None), 1),
                      slice(None, None, 2), 7, slice(299, 400), (slice(1, 3), Ellipsis)):
            assert torch.equal(s[index], big[index]), index
        assert same(f.get_slice("f4")[1:3], theirs["f4"][1:3])


def test_device_moves_tensors_and_a_bad_device_is_refused(model):
    _, m, sig, pub = model
    with mst.safe_open(m / "model.safetensors", "pt", device="meta", signature=sig, key=pub) as f:
        assert f.get_tensor("f32").device.type == "meta"
    with pytest.raises(RuntimeError):
        mst.safe_open(m / "model.safetensors", "pt", device="no-such-device", signature=sig, key=pub)
    with pytest.raises(ValueError):
        msnp.safe_open(m / "model.safetensors", device="cuda", signature=sig, key=pub)


def test_a_flipped_weight_is_refused_and_only_where_it_can_be_told_apart(model):
    kind, m, sig, pub = model
    path = m / "model.safetensors"
    with mst.safe_open(path, "pt", signature=sig, key=pub) as f:
        start = f._open().info("big")[2]
    flip(path, start + 200_000)  # a 64 KiB group inside "big", shared with no other tensor
    if kind == "native+outboard":
        # Tensor by tensor: only the tensor whose bytes changed is refused.
        with mst.safe_open(path, "pt", signature=sig, key=pub) as f:
            with pytest.raises(modelseal.VerificationError) as err:
                f.get_tensor("big")
            assert err.value.args[1] == "tampered"
            assert f.get_tensor("i64").tolist() == list(range(10))
    else:
        # The file (or its shard) is verified whole before anything is handed out.
        with pytest.raises(modelseal.VerificationError):
            with mst.safe_open(path, "pt", signature=sig, key=pub) as f:
                f.get_tensor("big")
    with pytest.raises(modelseal.VerificationError):
        mst.load_file(path, signature=sig, key=pub)
    with pytest.raises(modelseal.VerificationError):
        mst.load(path.read_bytes(), signature=sig, key=pub, name="model.safetensors")


def test_a_stranger_a_swapped_file_and_an_unsigned_file_are_refused(model, keys, tmp_path):
    kind, m, sig, pub = model
    _, _, stranger = keys
    path = m / "model.safetensors"
    with pytest.raises(modelseal.VerificationError) as err:
        mst.safe_open(path, "pt", signature=sig, key=stranger)
    assert err.value.args[1] == "untrusted-signer"
    # Swapped after open for another file of the same size: reads from then on fail.
    f = mst.safe_open(path, "pt", signature=sig, key=pub, whole=False)
    other = tmp_path / "other.safetensors"
    other.write_bytes(path.read_bytes())
    other.replace(path)
    with pytest.raises(modelseal.VerificationError) as err:
        f.get_tensor("big")
    assert err.value.args[1] == "read-refused"
    # An unsigned file beside the weights fails the file-set check.
    (m / "extra.py").write_text("import os")
    with pytest.raises(modelseal.VerificationError) as err:
        mst.safe_open(path, "pt", signature=sig, key=pub)
    assert err.value.args[1] == "files-mismatch"


def test_bytes_claimed_as_another_signed_file_are_refused(tmp_path, keys):
    key, pub, _ = keys
    m = tmp_path / "m"
    m.mkdir()
    save_file({"a": torch.ones(3)}, str(m / "a.safetensors"))
    save_file({"a": torch.zeros(3)}, str(m / "b.safetensors"))
    run("sign", m, "--key", key)
    sig = tmp_path / "m.sig"
    assert mst.load((m / "b.safetensors").read_bytes(), signature=sig, key=pub,
                    name="b.safetensors")["a"].sum() == 0
    with pytest.raises(modelseal.VerificationError):
        mst.load((m / "b.safetensors").read_bytes(), signature=sig, key=pub, name="a.safetensors")
    with pytest.raises(modelseal.VerificationError):
        mst.load((m / "b.safetensors").read_bytes(), signature=sig, key=pub)  # which file?


def test_the_gil_is_released_while_a_file_is_read_and_verified(tmp_path, keys):
    key, pub, _ = keys
    m = tmp_path / "m"
    m.mkdir()
    save_file({"w": torch.randn(64, 1 << 20)}, str(m / "model.safetensors"))  # 256 MiB
    run("sign", m, "--key", key)
    ticks = 0
    done = threading.Event()

    def count():
        nonlocal ticks
        while not done.is_set():
            ticks += 1

    counter = threading.Thread(target=count)
    started = {}

    def load():
        started["at"] = ticks
        state = mst.load_file(m / "model.safetensors", signature=tmp_path / "m.sig", key=pub)
        started["end"] = ticks
        return state

    counter.start()
    try:
        state = load()
    finally:
        done.set()
        counter.join()
    assert state["w"].shape == (64, 1 << 20)
    # With the GIL held for the whole read, the counting thread could not run at all.
    assert started["end"] - started["at"] > 10_000, started

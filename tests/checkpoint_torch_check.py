"""The PyTorch round trip of nanodiff checkpoints, run by test_checkpoint_torch.sh on what checkpoint_export wrote.

For each model: tools/checkpoint_convert.py to-torch, load_state_dict(strict=True) into tools/course_unet.py's
twin (built here with the course's own arguments), the same input batch as nanodiff's, outputs compared; then
from-torch back (with the original as template) and every parameter and buffer compared bit for bit. Also: the
EMA export, a state_dict saved from a torch.compile'd model, a checkpoint made from flags without a template,
and a state_dict that does not fit.

    /usr/bin/python3 tests/checkpoint_torch_check.py DIR SOURCE_DIR
"""
import os
import struct
import sys

import h5py
import numpy as np
import torch

# nanodiff and PyTorch sum float32 convolutions in different orders, which moves outputs by a few 1e-7 of
# their size: a max abs diff within 1e-4, and within 1e-4 of the largest output (the BatchNorm model's
# outputs are small), leaves room for that and still catches any wrong weight, name or layer.
TOLERANCE = 1e-4
RELATIVE = 1e-4


def read_ndfx(path):
    """Named float32 tensors of a .ndfx file (tests/fixtures/ndfx.py's format)."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"NDFX0001", f"{path}: not an NDFX0001 file"
    (count,), pos, tensors = struct.unpack_from("<I", data, 8), 12, {}
    for _ in range(count):
        (length,) = struct.unpack_from("<I", data, pos)
        name = data[pos + 4:pos + 4 + length].decode()
        pos += 4 + length
        (ndim,) = struct.unpack_from("<I", data, pos)
        dims = struct.unpack_from(f"<{ndim}q", data, pos + 4)
        pos += 4 + 8 * ndim
        n = int(np.prod(dims)) if ndim else 1
        tensors[name] = torch.from_numpy(np.frombuffer(data, "<f4", n, pos).reshape(dims).copy())
        pos += 4 * n
    return tensors


def groups(path, names=("params", "buffers")):
    """{group/name: float32 array} for the given groups of a checkpoint."""
    with h5py.File(path, "r") as f:
        return {f"{g}/{k}": np.asarray(d) for g in names if g in f for k, d in f[g].items()}


def same_bits(a, b):
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and
                                        np.array_equal(a[k].view(np.uint32), b[k].view(np.uint32)) for k in a)


def main(directory, source_dir):
    sys.path.insert(0, os.path.join(source_dir, "tools"))
    import checkpoint_convert
    import course_unet

    torch.manual_seed(0)
    # the course's constructor calls (notebooks 04, 03, 02) and their printed parameter counts
    models = {
        "dli-unet": (course_unet.UNet(150, 1, 16, down_chs=(64, 64, 128), t_embed_dim=8, c_embed_dim=10), 2002561),
        "dli-unet-uncond": (course_unet.UNet(150, 1, 16, down_chs=(64, 64, 128), t_embed_dim=8, c_embed_dim=0),
                            1979777),
        "dli-unet-v1": (course_unet.BatchNormUNet(150, 1, 16, down_chs=(16, 32, 64), t_embed_dim=1), 240385),
    }
    failures = 0
    for name, (model, count) in models.items():
        ckpt, pt, back = (os.path.join(directory, name + ext) for ext in (".h5", ".pt", ".back.h5"))
        n_params = sum(p.numel() for p in model.parameters())
        assert n_params == count, f"{name}: the twin has {n_params} parameters, the course {count}"
        assert checkpoint_convert.main(["to-torch", ckpt, pt]) == 0
        model.load_state_dict(torch.load(pt), strict=True)
        model.eval()
        fx = read_ndfx(os.path.join(directory, name + ".ndfx"))
        with torch.no_grad():
            if "context" in fx:
                out = model(fx["x"], fx["t"], fx["context"], torch.ones_like(fx["context"]))
            else:
                out = model(fx["x"], fx["t"])
        diff = (out - fx["out"]).abs().max().item()
        scale = fx["out"].abs().max().item()
        print(f"{name}: {n_params} parameters; output max |torch - nanodiff| = {diff:.3g}, "
              f"{diff / scale:.3g} of the largest output {scale:.3g} (tolerances {TOLERANCE}, {RELATIVE})")
        if not (diff <= TOLERANCE and diff <= RELATIVE * scale):
            print(f"{name}: FAILED: the PyTorch twin's output differs", file=sys.stderr)
            failures += 1
        assert checkpoint_convert.main(["from-torch", pt, back, "--like", ckpt]) == 0
        identical = same_bits(groups(ckpt), groups(back))
        print(f"{name}: to-torch then from-torch gives bit-identical parameters and buffers: {identical}")
        failures += not identical

    # --ema exports the EMA weights (which one optimizer step moved away from the parameters)
    ckpt = os.path.join(directory, "dli-unet.h5")
    ema_pt = os.path.join(directory, "dli-unet.ema.pt")
    assert checkpoint_convert.main(["to-torch", ckpt, ema_pt, "--ema"]) == 0
    state, ema = torch.load(ema_pt), groups(ckpt, ("ema",))
    ema_ok = all(np.array_equal(state[k[len("ema/"):]].numpy(), v) for k, v in ema.items())
    ema_ok = ema_ok and not same_bits({k[4:]: v for k, v in ema.items()},
                                      {k[7:]: v for k, v in groups(ckpt, ("params",)).items()})
    print(f"dli-unet: --ema exports the EMA weights: {ema_ok}")
    failures += not ema_ok

    # the course saves its torch.compile'd model: keys carry "_orig_mod."; from flags, without a template
    compiled = os.path.join(directory, "compiled.pt")
    torch.save({"_orig_mod." + k: v for k, v in torch.load(os.path.join(directory, "dli-unet-uncond.pt")).items()},
               compiled)
    from_flags = os.path.join(directory, "from-flags.h5")
    assert checkpoint_convert.main(["from-torch", compiled, from_flags, "--model", "dli-unet",
                                    "--c-embed-dim", "0"]) == 0
    flags_ok = same_bits(groups(os.path.join(directory, "dli-unet-uncond.h5")), groups(from_flags))
    print(f"dli-unet-uncond: a compiled model's state_dict, converted from flags alone, is bit-identical: {flags_ok}")
    failures += not flags_ok

    # a state_dict of another model is refused with the first name that does not fit
    try:
        checkpoint_convert.from_torch(os.path.join(directory, "dli-unet.pt"), os.path.join(directory, "bad.h5"),
                                      like=os.path.join(directory, "dli-unet-uncond.h5"))
        refused = "accepted"
    except checkpoint_convert.ConvertError as e:
        refused = str(e)
    print(f"a conditional state_dict into an unconditional template: {refused}")
    if "c_embed1" not in refused or os.path.exists(os.path.join(directory, "bad.h5")):
        failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))

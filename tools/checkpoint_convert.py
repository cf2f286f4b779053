#!/usr/bin/env python3
"""Converts a nanodiff checkpoint to and from a PyTorch state_dict of the course's model.

    /usr/bin/python3 tools/checkpoint_convert.py to-torch CKPT.h5 OUT.pt [--ema]
    /usr/bin/python3 tools/checkpoint_convert.py from-torch IN.pt CKPT.h5 --like TEMPLATE.h5
    /usr/bin/python3 tools/checkpoint_convert.py from-torch IN.pt CKPT.h5 --model dli-unet [--img-size 28 ...]

to-torch writes the parameters (or, with --ema, the EMA weights) and the BatchNorm running statistics, plus
the num_batches_tracked counters PyTorch keeps for each BatchNorm layer (0: nanodiff does not count), in the
module order of tools/course_unet.py's twin, so `model.load_state_dict(torch.load(OUT.pt))` works on the
course's model. from-torch writes a checkpoint holding the state_dict's weights (no optimizer or EMA state,
step 0) with the configuration of a template checkpoint or of the flags; the names and shapes must match the
model exactly. Keys of a torch.compile'd model ("_orig_mod." prefix, as the course saves them) are accepted.

The checkpoint layout (train/checkpoint.c): root attributes for the format, the model and training
configuration and the run's state; datasets params/<name>, buffers/<name>, adam/m/<name>, adam/v/<name> and
ema/<name>, float32, shaped as the tensors. Needs Debian's python3-torch and python3-h5py.
"""
import argparse
import collections
import os
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import course_unet  # noqa: E402

FORMAT, VERSION = "nanodiff-checkpoint", 1

# Root attributes and their stored types, as train/checkpoint.c writes them (strings apart).
MODEL_ATTRS = [("img_ch", np.int32), ("img_size", np.int32), ("T", np.int32), ("down_chs", np.int32),
               ("t_embed_dim", np.int32), ("c_embed_dim", np.int32), ("small_groups", np.int32),
               ("big_groups", np.int32), ("heads", np.int32)]
TRAIN_ATTRS = [("unit_range", np.uint8), ("random_flip", np.uint8), ("beta_start", np.float64),
               ("beta_end", np.float64), ("epochs", np.int32), ("batch_size", np.int32), ("lr", np.float32),
               ("adamw", np.uint8), ("weight_decay", np.float32), ("cfg_drop", np.float32),
               ("clip_grad", np.float32), ("ema_decay", np.float32), ("seed", np.uint64),
               ("checkpoint_every", np.int64), ("preview_every", np.int64), ("max_steps", np.int64)]
# The course's training settings (notebook 04), for a checkpoint made from flags alone.
TRAIN_DEFAULTS = dict(unit_range=0, random_flip=1, beta_start=1e-4, beta_end=0.02, epochs=3, batch_size=128,
                      lr=1e-3, adamw=0, weight_decay=0.0, cfg_drop=0.1, clip_grad=0.0, ema_decay=0.0, seed=0,
                      checkpoint_every=0, preview_every=0, max_steps=0)
# nd_model_config_default (nn/model.c)
MODEL_DEFAULTS = {
    "dli-unet": dict(down_chs=(64, 64, 128), t_embed_dim=8, c_embed_dim=10),
    "dli-unet-v1": dict(down_chs=(16, 32, 64), t_embed_dim=1, c_embed_dim=0),
    "t2i-unet": dict(down_chs=(32, 64, 64), t_embed_dim=32, c_embed_dim=0),
}


class ConvertError(Exception):
    pass


def text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def open_checkpoint(path):
    """The file opened read-only, after checking that it is a nanodiff checkpoint."""
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ConvertError(f"{path}: not a readable nanodiff checkpoint ({e})")
    if text(f.attrs.get("format", "")) != FORMAT:
        f.close()
        raise ConvertError(f"{path}: not a nanodiff checkpoint (no 'format' attribute '{FORMAT}')")
    version = int(f.attrs.get("format_version", 0))
    if version != VERSION:
        f.close()
        raise ConvertError(f"{path}: checkpoint format version {version}; this script reads version {VERSION}")
    return f


def model_config(f):
    """The model configuration of an open checkpoint, as a dict."""
    cfg = {"kind": text(f.attrs["model_kind"])}
    for name, _ in MODEL_ATTRS:
        value = f.attrs[name]
        cfg[name] = tuple(int(v) for v in value) if name == "down_chs" else int(value)
    return cfg


def course_model(cfg):
    """tools/course_unet.py's twin of the configuration, or None for a model the course does not have."""
    if cfg["kind"] == "dli-unet":
        return course_unet.UNet(cfg["T"], cfg["img_ch"], cfg["img_size"], cfg["down_chs"], cfg["t_embed_dim"],
                                cfg["c_embed_dim"], cfg["small_groups"], cfg["big_groups"])
    if cfg["kind"] == "dli-unet-v1":
        return course_unet.BatchNormUNet(cfg["T"], cfg["img_ch"], cfg["img_size"], cfg["down_chs"],
                                         cfg["t_embed_dim"])
    return None


def check_names(found, expected, where):
    """found and expected map names to shapes; raises naming the first name missing, extra or misshaped."""
    for name, shape in expected.items():
        if name not in found:
            raise ConvertError(f"{where} lacks '{name}' (shape {tuple(shape)} in the model)")
        if tuple(found[name]) != tuple(shape):
            raise ConvertError(f"{where}: '{name}' has shape {tuple(found[name])}, the model {tuple(shape)}")
    for name in found:
        if name not in expected:
            raise ConvertError(f"{where} has '{name}', which the model lacks")


def to_torch(ckpt, out, ema=False):
    with open_checkpoint(ckpt) as f:
        group = "ema" if ema else "params"
        if group not in f:
            raise ConvertError(f"{ckpt}: the checkpoint holds no '{group}' group"
                               + (" (the run kept no EMA weights)" if ema else ""))
        tensors = {name: torch.from_numpy(np.asarray(d, dtype=np.float32)) for name, d in f[group].items()}
        if "buffers" in f:
            tensors.update({name: torch.from_numpy(np.asarray(d, dtype=np.float32))
                            for name, d in f["buffers"].items()})
        model = course_model(model_config(f))
    state = collections.OrderedDict()
    if model is not None:
        reference = model.state_dict()
        expected = {k: v.shape for k, v in reference.items() if not k.endswith(".num_batches_tracked")}
        check_names({k: v.shape for k, v in tensors.items()}, expected, ckpt)
        for name in reference:
            state[name] = torch.zeros((), dtype=torch.long) if name.endswith(".num_batches_tracked") else tensors[name]
    else:
        for name, tensor in tensors.items():
            state[name] = tensor
            if name.endswith(".running_mean"):
                state[name[:-len("running_mean")] + "num_batches_tracked"] = torch.zeros((), dtype=torch.long)
    torch.save(state, out)
    return state


def load_state_dict(path):
    """A state_dict from a .pt file: a bare state_dict or one under 'state_dict'/'model', compiled or not."""
    state = torch.load(path, map_location="cpu")
    if isinstance(state, torch.nn.Module):
        state = state.state_dict()
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ConvertError(f"{path}: holds a {type(state).__name__}, not a state_dict")
    prefix = "_orig_mod."  # torch.compile's wrapper, which the course's notebooks use
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state.items()
            if not k.endswith(".num_batches_tracked")}


def write_dataset(group, name, array):
    # one chunk per tensor with a Fletcher-32 checksum, as train/checkpoint.c writes them
    group.create_dataset(name, data=array, dtype="<f4", chunks=array.shape or None, fletcher32=bool(array.shape))


def from_torch(pt, out, like=None, flags=None):
    state = load_state_dict(pt)
    if like is not None:
        with open_checkpoint(like) as t:
            attrs = dict(t.attrs.items())
            params = {name: d.shape for name, d in t["params"].items()}
            buffers = {name: d.shape for name, d in t["buffers"].items()} if "buffers" in t else {}
    else:
        cfg = dict(MODEL_DEFAULTS[flags.model])
        cfg.update({k: v for k, v in vars(flags).items() if v is not None and k != "model"})
        cfg.update(kind=flags.model, down_chs=tuple(cfg["down_chs"]))
        model = course_model(cfg)
        if model is None:
            raise ConvertError(f"{flags.model}: no course model to check the names against; use --like")
        params = {k: v.shape for k, v in model.named_parameters()}
        buffers = {k: v.shape for k, v in model.named_buffers() if not k.endswith(".num_batches_tracked")}
        attrs = {"format": FORMAT, "format_version": np.int32(VERSION), "model_kind": flags.model, "data": "",
                 "step": np.int64(0), "rng_seed": np.uint64(0), "rng_offset": np.uint64(0)}
        attrs.update({name: np.array(cfg[name], dtype=dtype) for name, dtype in MODEL_ATTRS})
        attrs.update({name: np.array(TRAIN_DEFAULTS[name], dtype=dtype) for name, dtype in TRAIN_ATTRS})
    check_names({k: v.shape for k, v in state.items()}, {**params, **buffers}, pt)
    # a fresh start for the run's state: these weights did not come from the template's run
    attrs.update(step=np.int64(0), rng_offset=np.uint64(0))

    tmp = f"{out}.tmp.{os.getpid()}"
    try:
        with h5py.File(tmp, "w") as f:
            for name, value in attrs.items():
                f.attrs[name] = value
            for group_name, names in (("params", params), ("buffers", buffers)):
                group = f.create_group(group_name)
                for name in names:
                    write_dataset(group, name, state[name].detach().cpu().to(torch.float32).numpy())
            f.flush()
        with open(tmp, "rb") as written:
            os.fsync(written.fileno())
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("to-torch", help="checkpoint -> state_dict (.pt)")
    p.add_argument("ckpt")
    p.add_argument("out")
    p.add_argument("--ema", action="store_true", help="the EMA weights instead of the trained ones")
    p = sub.add_parser("from-torch", help="state_dict (.pt) -> checkpoint")
    p.add_argument("pt")
    p.add_argument("out")
    p.add_argument("--like", help="template checkpoint giving the configuration")
    p.add_argument("--model", choices=sorted(MODEL_DEFAULTS), help="model kind, when there is no template")
    p.add_argument("--img-ch", type=int, dest="img_ch", default=None)
    p.add_argument("--img-size", type=int, dest="img_size", default=None)
    p.add_argument("--T", type=int, dest="T", default=None)
    p.add_argument("--down-chs", type=lambda s: tuple(int(v) for v in s.split(",")), dest="down_chs", default=None)
    p.add_argument("--t-embed-dim", type=int, dest="t_embed_dim", default=None)
    p.add_argument("--c-embed-dim", type=int, dest="c_embed_dim", default=None)
    p.add_argument("--small-groups", type=int, dest="small_groups", default=None)
    p.add_argument("--big-groups", type=int, dest="big_groups", default=None)
    p.add_argument("--heads", type=int, dest="heads", default=None)
    args = parser.parse_args(argv)
    try:
        if args.command == "to-torch":
            to_torch(args.ckpt, args.out, args.ema)
        else:
            if (args.like is None) == (args.model is None):
                parser.error("from-torch needs exactly one of --like TEMPLATE.h5 and --model KIND")
            flags = argparse.Namespace(**{k: getattr(args, k) for k in
                                          ("model", "img_ch", "img_size", "T", "down_chs", "t_embed_dim",
                                           "c_embed_dim", "small_groups", "big_groups", "heads")})
            for name, default in (("img_ch", 1), ("img_size", 16), ("T", 150), ("small_groups", 8),
                                  ("big_groups", 32), ("heads", 4)):
                if getattr(flags, name) is None:
                    setattr(flags, name, default)
            from_torch(args.pt, args.out, args.like, None if args.like else flags)
    except ConvertError as e:
        print(f"checkpoint_convert: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

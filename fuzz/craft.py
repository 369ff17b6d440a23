#!/usr/bin/env python3
"""Crafted checkpoints for the fuzzer: each seed (seed-lm.h5, seed-tagger.h5, seed-seq2seq.h5 in DIR)
edited with h5py into files that lie about sizes, shapes, types and storage, then resealed, so
that they pass the seal and meet the loader's own checks. Every one must be refused.

  craft.py DIR     writes DIR/crafted-<seed>-<what>.h5 and prints how many
"""

import os
import shutil
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import sdlstm_checkpoint  # noqa: E402

I64_MAX = np.iinfo(np.int64).max


def fixed(s):
    """A fixed-length UTF-8 string, as checkpoints store them."""
    b = s.encode()
    return np.array(b, dtype=h5py.string_dtype("utf-8", max(len(b), 1)))


def set_attr(obj, name, value):
    if name in obj.attrs:
        del obj.attrs[name]
    obj.attrs[name] = value


def replace(f, name, **kwargs):
    del f[name]
    return f.create_dataset(name, **kwargs)


def declared(f, name, shape, dtype="<f4", chunks=None):
    """A dataset declared with `shape` whose chunks are never written."""
    del f[name]
    return f.create_dataset(name, shape=shape, dtype=dtype, chunks=chunks or tuple(min(s, 64) for s in shape), fletcher32=True)


def fresh_group(f, name):
    """The group `name`, emptied and made again with h5py's defaults (dense storage past 8 members)."""
    if name in f and len(f[name]) + len(f[name].attrs) > 0:
        del f[name]
    if name not in f:
        f.create_group(name)
    return f[name]


def first_param(f):
    return next(k for k in f if isinstance(f[k], h5py.Dataset))


def swap_param(f, make):
    """Replaces the first parameter dataset by make(f, name) (a link or a group)."""
    name = first_param(f)
    del f[name]
    make(f, name)


def edits(task):
    e = {
        "vocab-2e22": lambda f: set_attr(f, "vocab_size", np.int64(1 << 22)),
        "hidden-65536": lambda f: set_attr(f, "hidden_size", np.int64(65536)),
        "embed-65536": lambda f: set_attr(f, "embed_size", np.int64(65536)),
        "layers-64": lambda f: set_attr(f, "num_layers", np.int64(64)),
        "vocab-int64max": lambda f: set_attr(f, "vocab_size", np.int64(I64_MAX)),
        "vocab-negative": lambda f: set_attr(f, "vocab_size", np.int64(-5)),
        "vocab-uint64max": lambda f: set_attr(f, "vocab_size", np.uint64(2**64 - 1)),
        "vocab-float64": lambda f: set_attr(f, "vocab_size", np.float64(40)),
        "step-int64max": lambda f: set_attr(f["training"], "step", np.int64(I64_MAX)),
        "epoch-2e53+1": lambda f: set_attr(f["training"], "epoch", np.int64((1 << 53) + 1)),
        "lr-float64": lambda f: set_attr(f["training"], "learning_rate", np.float64(1.0)),
        "format-version-1": lambda f: set_attr(f, "format_version", np.int64(1)),
        "format-version-3": lambda f: set_attr(f, "format_version", np.int64(3)),
        "format-vlen": lambda f: set_attr(f, "format", "sdlstm-checkpoint"),  # h5py: a variable-length string
        "task-vlen": lambda f: set_attr(f, "task", "language_model"),
        "policy-vlen": lambda f: set_attr(f["dropout"], "input_policy", "structured"),
        "library-version-1MB": lambda f: set_attr(f, "library_version", fixed("x" * (1 << 20))),
        "task-2d": lambda f: set_attr(f, "task", np.array([[b"a", b"b"], [b"c", b"d"]])),
        "dense-attributes": lambda f: [set_attr(g, f"x{i}", np.int64(i)) for g in [fresh_group(f, "dropout")] for i in range(12)],
        "dense-links": lambda f: [g.create_dataset(f"t{i}", data=np.array([b"a"]), chunks=(1,), fletcher32=True)
                                  for g in [fresh_group(f, "strings")] for i in range(12)],
        "param-contiguous": lambda f: replace(f, first_param(f), data=f[first_param(f)][()]),
        "param-gzip-bomb": lambda f: replace(f, first_param(f), shape=(1 << 22, 256), dtype="<f4", chunks=(4096, 256), compression="gzip", fillvalue=0),
        "param-declared-2e30": lambda f: declared(f, first_param(f), (1 << 15, 1 << 15)),
        "param-float64": lambda f: replace(f, first_param(f), data=f[first_param(f)][()].astype("<f8"), chunks=True, fletcher32=True),
        "param-bigendian": lambda f: replace(f, first_param(f), data=f[first_param(f)][()].astype(">f4"), chunks=True, fletcher32=True),
        "param-scalar": lambda f: replace(f, first_param(f), data=np.float32(1)),
        "param-nan": lambda f: replace(f, first_param(f), data=np.full(f[first_param(f)].shape, np.nan, "<f4"), chunks=True, fletcher32=True),
        "rng-declared-2e30": lambda f: declared(f["training"], "rng_state", (1 << 30,), dtype="<u8", chunks=(4096,)),
        "rng-vlen": lambda f: replace(f["training"], "rng_state", data=np.array(["a", "b", "c", "d"], dtype=h5py.string_dtype())),
        "strings-declared-2e20x2e10": lambda f: declared(f["strings"], "vocab", (1 << 20,), dtype=h5py.string_dtype("utf-8", 1 << 10), chunks=(1024,)),
        "strings-vlen": lambda f: replace(f["strings"], "vocab", data=np.array(["a", "b"], dtype=h5py.string_dtype())),
        "strings-empty": lambda f: replace(f["strings"], "vocab", shape=(0,), dtype=h5py.string_dtype("utf-8", 4)),
        "strings-bad-utf8": lambda f: replace(f["strings"], "vocab", data=np.array([b"\xff\xfe"], dtype="S2"), chunks=True, fletcher32=True),
        "metadata-vlen": lambda f: replace(f["metadata"], "corpus", data=np.array(["x"], dtype=h5py.string_dtype())),
        "metadata-declared-huge": lambda f: declared(f["metadata"], "corpus", (1,), dtype=h5py.string_dtype("utf-8", 1 << 24), chunks=(1,)),
        "soft-link": lambda f: swap_param(f, lambda g, n: g.__setitem__(n, h5py.SoftLink("/training/rng_state"))),
        "external-link": lambda f: f["strings"].__setitem__("vocab2", h5py.ExternalLink("/etc/passwd", "/x")),
        "group-as-param": lambda f: swap_param(f, lambda g, n: g.create_group(n)),
    }
    if task == "lm":
        e["state-declared-2e28"] = lambda f: declared(f["state"], "h", (2, 1 << 28, 12), chunks=(1, 4096, 12))
        e["state-declared-2e24"] = lambda f: declared(f["state"], "h", (2, 1 << 24, 12), chunks=(1, 4096, 12))
        e["state-batch-mismatch"] = lambda f: replace(f["state"], "h", data=np.zeros((2, 4, 12), "<f4"), chunks=(1, 4, 12), fletcher32=True)
    if task == "tagger":
        e["tags-2e22"] = lambda f: set_attr(f, "num_tags", np.int64(1 << 22))
        e["tag-names-declared-2e20"] = lambda f: declared(f["tags"], "names", (1 << 20,), dtype=h5py.string_dtype("utf-8", 64), chunks=(1024,))
        e["char-vocab-2e22"] = lambda f: set_attr(f, "char_vocab_size", np.int64(1 << 22))
        e["scheme-vlen"] = lambda f: set_attr(f["tags"], "scheme", "iob2")
    if task == "seq2seq":
        e["target-vocab-2e22"] = lambda f: set_attr(f, "target_vocab_size", np.int64(1 << 22))
        e["bidirectional-2"] = lambda f: set_attr(f, "bidirectional", np.int64(2))
    return e


def main():
    d = sys.argv[1]
    made = 0
    for task in ("lm", "tagger", "seq2seq"):
        seed = os.path.join(d, f"seed-{task}.h5")
        for what, edit in edits(task).items():
            out = os.path.join(d, f"crafted-{task}-{what}.h5")
            shutil.copyfile(seed, out)
            with h5py.File(out, "r+") as f:
                edit(f)
            sdlstm_checkpoint.seal(out)
            made += 1
        # The HDF5 file without its seal: what a format-1 reader would see.
        with open(seed, "rb") as f:
            body = f.read()[sdlstm_checkpoint.HEADER_SIZE:]
        with open(os.path.join(d, f"crafted-{task}-unsealed.h5"), "wb") as f:
            f.write(body)
        made += 1
    print(f"craft: {made} crafted checkpoints in {d}")


if __name__ == "__main__":
    main()

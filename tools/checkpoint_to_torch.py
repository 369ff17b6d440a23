#!/usr/bin/env python3
"""Loads an sdlstm language-model checkpoint into PyTorch and reports the evaluation loss.

Needs only h5py and torch (Debian: python3-h5py, python3-torch) — not sdlstm. The checkpoint's
parameter datasets are PyTorch's state_dict of

    embedding = nn.Embedding(vocab_size, embed_size)
    rnn       = nn.LSTM(embed_size, hidden_size, num_layers)
    decoder   = nn.Linear(hidden_size, vocab_size)

so they load with load_state_dict(strict=True) as they are. docs/CHECKPOINT.md describes the file;
its seal (the first 512 bytes) is checked first (tools/sdlstm_checkpoint.py, next to this file).

Usage (one JSON line on stdout: loss in nats per token, tokens, perplexity):

  checkpoint_to_torch.py CKPT --batch BATCH.json [--carried-state]
      BATCH.json holds {"inputs": [[...], ...], "targets": [[...], ...]}, batch-major B x T ids, as
      sdlstm_batch has them. --carried-state starts from the checkpoint's /state (h, c), as
      sdlstm_evaluate does on a model loaded from a checkpoint saved with SDLSTM_SAVE_CARRIED_STATE;
      otherwise the state starts at zero.
  checkpoint_to_torch.py CKPT --text FILE [--batch-size 20] [--bptt 35]
      Tokenises FILE with the checkpoint's own vocabulary (string table "vocab": <eos> after every
      line, unknown words -> <unk>) and evaluates it as examples/lm/lm.c does: batch-size parallel
      streams, windows of bptt tokens, the state carried from a zero start.
  --save-state-dict OUT.pt   also writes the PyTorch state_dict (torch.save).
  --dtype float64|float32    precision of the PyTorch evaluation (float64).
"""

import argparse
import json
import math
import re
import sys

import h5py
import torch
from torch import nn

import sdlstm_checkpoint

FORMAT = "sdlstm-checkpoint"
FORMAT_VERSION = sdlstm_checkpoint.FORMAT_VERSION


class LanguageModel(nn.Module):
    """sdlstm's LM in PyTorch: the names match the checkpoint's datasets."""

    def __init__(self, vocab_size, embed_size, hidden_size, num_layers):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_size)
        self.rnn = nn.LSTM(embed_size, hidden_size, num_layers)
        self.decoder = nn.Linear(hidden_size, vocab_size)

    def forward(self, inputs, state):
        """inputs: T x B ids; state: (h, c), each num_layers x B x hidden. Returns T x B x V logits."""
        out, state = self.rnn(self.embedding(inputs), state)
        return self.decoder(out), state


def fail(message):
    print(f"checkpoint_to_torch: {message}", file=sys.stderr)
    sys.exit(1)


def attribute(f, name):
    value = f.attrs.get(name)
    if value is None:
        fail(f"missing attribute {name}")
    # Strings are fixed-length (h5py: numpy.bytes_), UTF-8.
    return value.decode() if isinstance(value, bytes) else value


def load(path, dtype):
    """The PyTorch model, the file's string tables and its carried state (or None)."""
    try:
        sdlstm_checkpoint.verify(path)
    except (sdlstm_checkpoint.SealError, OSError) as e:
        fail(str(e))
    with h5py.File(path, "r") as f:
        if attribute(f, "format") != FORMAT:
            fail(f"{path} is not an sdlstm checkpoint")
        if int(attribute(f, "format_version")) != FORMAT_VERSION:
            fail(f"format_version {attribute(f, 'format_version')} is not {FORMAT_VERSION}")
        if attribute(f, "task") != "language_model":
            fail(f"task {attribute(f, 'task')}: this tool loads language models")
        model = LanguageModel(*(int(attribute(f, k)) for k in ("vocab_size", "embed_size", "hidden_size", "num_layers")))
        state_dict = {}
        for name, tensor in model.state_dict().items():
            if name not in f:
                fail(f"missing dataset {name}")
            data = f[name][()]
            if tuple(data.shape) != tuple(tensor.shape):
                fail(f"{name}: shape {data.shape}, PyTorch expects {tuple(tensor.shape)}")
            state_dict[name] = torch.from_numpy(data)
        model.load_state_dict(state_dict, strict=True)
        strings = {name: list(ds.asstr()[()]) for name, ds in f["strings"].items()}
        carried = None
        if "state" in f:
            carried = tuple(torch.from_numpy(f["state"][k][()]) for k in ("h", "c"))
    model = model.to(dtype).eval()
    if carried is not None:
        carried = tuple(t.to(dtype) for t in carried)
    return model, strings, carried


def zero_state(model, batch, dtype):
    shape = (model.rnn.num_layers, batch, model.rnn.hidden_size)
    return torch.zeros(shape, dtype=dtype), torch.zeros(shape, dtype=dtype)


@torch.no_grad()
def evaluate_windows(model, windows, state):
    """Mean loss per token over batch-major (inputs, targets) windows, the state carried between them."""
    total, tokens = 0.0, 0
    for inputs, targets in windows:
        inputs = torch.tensor(inputs, dtype=torch.long).t()  # T x B
        targets = torch.tensor(targets, dtype=torch.long).t()
        logits, state = model(inputs, state)
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum")
        total += float(loss)
        tokens += targets.numel()
    return total / tokens, tokens


def tokenize(path, vocab):
    """Ids of a text as examples/lm/lm.c reads it: whitespace-separated words, <eos> after every line."""
    ids = {w: i for i, w in enumerate(vocab)}
    if "<eos>" not in ids or "<unk>" not in ids:
        fail('the vocabulary has no "<eos>" or "<unk>"')
    eos, unk = ids["<eos>"], ids["<unk>"]
    with open(path, encoding="utf-8") as f:
        text = f.read()
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    out = []
    for line in lines:
        out.extend(ids.get(w, unk) for w in re.split(r"[ \t\r\v\f]+", line) if w)
        out.append(eos)
    return out


def lm_windows(ids, batch, bptt):
    """lm.c's batching: `batch` streams of len(ids) // batch tokens, windows of bptt, the last shorter."""
    length = len(ids) // batch
    if length < 2:
        fail(f"{len(ids)} tokens are too few for {batch} streams")
    streams = [ids[r * length:(r + 1) * length] for r in range(batch)]
    for t0 in range(0, length - 1, bptt):
        t = min(bptt, length - 1 - t0)
        yield [s[t0:t0 + t] for s in streams], [s[t0 + 1:t0 + 1 + t] for s in streams]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--batch", help="JSON file with batch-major inputs and targets")
    mode.add_argument("--text", help="text to tokenise with the checkpoint's vocabulary")
    p.add_argument("--carried-state", action="store_true", help="start --batch from the checkpoint's /state")
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--bptt", type=int, default=35)
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument("--save-state-dict", metavar="OUT.pt")
    args = p.parse_args()

    dtype = getattr(torch, args.dtype)
    model, strings, carried = load(args.checkpoint, dtype)
    if args.save_state_dict:
        torch.save(model.state_dict(), args.save_state_dict)
    result = {}
    if args.batch:
        with open(args.batch) as f:
            batch = json.load(f)
        inputs, targets = batch["inputs"], batch["targets"]
        if args.carried_state:
            if carried is None:
                fail("--carried-state: the checkpoint has no /state")
            state = carried
        else:
            state = zero_state(model, len(inputs), dtype)
        loss, tokens = evaluate_windows(model, [(inputs, targets)], state)
        result = {"loss": loss, "tokens": tokens}
    elif args.text:
        if "vocab" not in strings:
            fail('the checkpoint has no "vocab" string table')
        ids = tokenize(args.text, strings["vocab"])
        windows = list(lm_windows(ids, args.batch_size, args.bptt))
        loss, tokens = evaluate_windows(model, windows, zero_state(model, args.batch_size, dtype))
        result = {"loss": loss, "tokens": tokens, "windows": len(windows)}
    if result:
        result["perplexity"] = math.exp(result["loss"])
    result["parameters"] = sum(t.numel() for t in model.state_dict().values())
    print(json.dumps(result))


if __name__ == "__main__":
    main()

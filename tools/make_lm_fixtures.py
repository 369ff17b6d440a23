"""Golden fixtures for the language-model forward and backward pass.

Writes four JSON files into Tests/SDLSTMCoreTests/Fixtures/:
  lm_golden_none.json         no dropout
  lm_golden_standard.json     case II  (per sample, new each step) on input, between, output; p = 0.5
  lm_golden_structured.json   case III (shared by the batch, new each step) on input, between,
                              output and recurrent; p = 0.4
  lm_golden_variational.json  case I   (per sample, one mask for the window) on input, output and
                              recurrent; p = 0.3
Each holds a tiny model (V 11, E 5, H 6, 2 layers, B 3, T 4), its inputs, initial state, the
explicit dropout masks, and the float64 reference loss, gradients and final state computed by
PyTorch autograd, so the Swift tests check our hand-written passes against an independent
implementation. The masks are data, not drawn by the library, so the fixtures do not depend on
our random stream.

Rerun from the repository root (needs Debian's python3-torch, hence the system interpreter):
    /usr/bin/python3 tools/make_lm_fixtures.py
The output is deterministic (fixed seeds), so rerunning should leave the files unchanged.
"""

import json
import os

import torch

V, E, H, L, B, T = 11, 5, 6, 2, 3, 4
DTYPE = torch.float64
MODEL_SEED = 20211206
OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "SDLSTMCoreTests",
                       "Fixtures")

PARAM_NAMES = ["embedding.weight"]
for _l in range(L):
    PARAM_NAMES += [f"rnn.weight_ih_l{_l}", f"rnn.weight_hh_l{_l}", f"rnn.bias_ih_l{_l}",
                    f"rnn.bias_hh_l{_l}"]
PARAM_NAMES += ["decoder.weight", "decoder.bias"]


def param_shapes():
    shapes = {"embedding.weight": (V, E)}
    for l in range(L):
        d_in = E if l == 0 else H
        shapes[f"rnn.weight_ih_l{l}"] = (4 * H, d_in)
        shapes[f"rnn.weight_hh_l{l}"] = (4 * H, H)
        shapes[f"rnn.bias_ih_l{l}"] = (4 * H,)
        shapes[f"rnn.bias_hh_l{l}"] = (4 * H,)
    shapes["decoder.weight"] = (V, H)
    shapes["decoder.bias"] = (V,)
    return shapes


def uniform(gen, *shape):
    return torch.rand(*shape, generator=gen, dtype=DTYPE) - 0.5


def make_model_and_data():
    # One model and one batch shared by every fixture, so the fixtures differ only in their masks
    # and the no-dropout loss is a baseline for the others.
    gen = torch.Generator().manual_seed(MODEL_SEED)
    params = {name: uniform(gen, *shape) for name, shape in param_shapes().items()}
    inputs = torch.randint(0, V, (B, T), generator=gen)
    targets = torch.randint(0, V, (B, T), generator=gen)
    h0 = [uniform(gen, B, H) for _ in range(L)]
    c0 = [uniform(gen, B, H) for _ in range(L)]
    return params, inputs, targets, h0, c0


def draw_mask(gen, policy, p, width):
    """A [T, B, width] multiplier array, 0 or 1/(1-p)."""
    keep = 1.0 - p
    if policy == "standard":
        bern = torch.rand(T, B, width, generator=gen, dtype=DTYPE) < keep
    elif policy == "structured":
        bern = (torch.rand(T, 1, width, generator=gen, dtype=DTYPE) < keep).expand(T, B, width)
    elif policy == "variational":
        bern = (torch.rand(1, B, width, generator=gen, dtype=DTYPE) < keep).expand(T, B, width)
    else:
        raise ValueError(policy)
    return bern.to(DTYPE) / keep


def check_policy(mask, policy):
    # Guards against a broadcasting slip silently turning one policy into another.
    if policy == "structured":
        assert torch.equal(mask, mask[:, :1, :].expand_as(mask))
        assert not torch.equal(mask, mask[:1].expand_as(mask)), "structured mask constant in time"
    elif policy == "variational":
        assert torch.equal(mask, mask[:1].expand_as(mask))
        assert not torch.equal(mask, mask[:, :1, :].expand_as(mask)), "variational mask batch-uniform"
    elif policy == "standard":
        assert not torch.equal(mask, mask[:1].expand_as(mask))
        assert not torch.equal(mask, mask[:, :1, :].expand_as(mask))
    # A mask with no zeros (or no survivors) would not exercise the masking at all.
    assert (mask == 0).any() and (mask != 0).any()


def make_masks(seed, policy, p, sites):
    gen = torch.Generator().manual_seed(seed)
    masks = {"input": None, "between": None, "output": None, "recurrent": None}
    if "input" in sites:
        masks["input"] = draw_mask(gen, policy, p, E)
    if "between" in sites:
        masks["between"] = [draw_mask(gen, policy, p, H) for _ in range(L - 1)]
    if "output" in sites:
        masks["output"] = draw_mask(gen, policy, p, H)
    if "recurrent" in sites:
        masks["recurrent"] = [draw_mask(gen, policy, p, H) for _ in range(L)]
    for m in masks.values():
        for one in (m if isinstance(m, list) else [m] if m is not None else []):
            check_policy(one, policy)
    return masks


def forward(params, inputs, targets, h0, c0, masks):
    """The reference step loop, written out so each mask sits exactly where METHOD.md puts it."""
    h = list(h0)
    c = list(c0)
    logits = []
    for t in range(T):
        x = params["embedding.weight"][inputs[:, t]]
        for l in range(L):
            site = masks["input"] if l == 0 else (masks["between"][l - 1] if masks["between"] else None)
            if site is not None:
                x = x * site[t]
            hr = h[l] if masks["recurrent"] is None else h[l] * masks["recurrent"][l][t]
            g = (x @ params[f"rnn.weight_ih_l{l}"].T + params[f"rnn.bias_ih_l{l}"]
                 + hr @ params[f"rnn.weight_hh_l{l}"].T + params[f"rnn.bias_hh_l{l}"])
            gi, gf, gg, go = g.chunk(4, dim=1)
            c[l] = torch.sigmoid(gf) * c[l] + torch.sigmoid(gi) * torch.tanh(gg)
            h[l] = torch.sigmoid(go) * torch.tanh(c[l])
            x = h[l]
        top = x if masks["output"] is None else x * masks["output"][t]
        logits.append(top @ params["decoder.weight"].T + params["decoder.bias"])
    logits = torch.stack(logits, dim=1)  # [B, T, V], batch-major like the targets
    loss = torch.nn.functional.cross_entropy(logits.reshape(B * T, V), targets.reshape(B * T),
                                             reduction="mean")
    return loss, logits, h, c


def check_against_nn_lstm(params, inputs, targets, h0, c0, loss, logits, h, c):
    # Our loop must be the same model as torch.nn.LSTM, or the fixtures test the wrong thing.
    rnn = torch.nn.LSTM(E, H, num_layers=L, batch_first=True).to(DTYPE)
    with torch.no_grad():
        for name, tensor in rnn.named_parameters():
            tensor.copy_(params[f"rnn.{name}"])
        emb = params["embedding.weight"][inputs]
        out, (hn, cn) = rnn(emb, (torch.stack(h0), torch.stack(c0)))
        ref_logits = out @ params["decoder.weight"].T + params["decoder.bias"]
        ref_loss = torch.nn.functional.cross_entropy(ref_logits.reshape(B * T, V),
                                                     targets.reshape(B * T))
    tol = 1e-6
    assert (logits.detach() - ref_logits).abs().max() < tol
    assert abs(loss.item() - ref_loss.item()) < tol
    for l in range(L):
        assert (h[l].detach() - hn[l]).abs().max() < tol
        assert (c[l].detach() - cn[l]).abs().max() < tol


def tolist(x):
    return x.detach().reshape(-1).tolist()


def mask_json(m):
    if m is None:
        return None
    if isinstance(m, list):
        return [tolist(one) for one in m]
    return tolist(m)  # [T, B, D] row-major: index (t*B + b)*D + d


def dump(obj):
    # One top-level key (and one parameter) per line: compact, yet diffs stay readable.
    def enc(v):
        return json.dumps(v, separators=(",", ":"))

    lines = []
    for k, v in obj.items():
        if isinstance(v, dict) and k in ("params", "grads", "masks"):
            inner = ",\n".join(f"  {enc(ik)}:{enc(iv)}" for ik, iv in v.items())
            lines.append(f"{enc(k)}:{{\n{inner}\n}}")
        else:
            lines.append(f"{enc(k)}:{enc(v)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


FIXTURES = [
    # name, policy, p, sites, mask seed
    ("none", None, 0.0, (), None),
    ("standard", "standard", 0.5, ("input", "between", "output"), 1002),
    ("structured", "structured", 0.4, ("input", "between", "output", "recurrent"), 1003),
    ("variational", "variational", 0.3, ("input", "output", "recurrent"), 1001),
]


def main():
    torch.set_grad_enabled(True)
    base_params, inputs, targets, h0, c0 = make_model_and_data()
    os.makedirs(OUT_DIR, exist_ok=True)
    for name, policy, p, sites, seed in FIXTURES:
        params = {k: v.clone().requires_grad_(True) for k, v in base_params.items()}
        if policy is None:
            masks = {"input": None, "between": None, "output": None, "recurrent": None}
        else:
            masks = make_masks(seed, policy, p, sites)
        loss, logits, h, c = forward(params, inputs, targets, h0, c0, masks)
        if policy is None:
            check_against_nn_lstm(params, inputs, targets, h0, c0, loss, logits, h, c)
        loss.backward()
        obj = {
            "name": name, "vocab": V, "embed": E, "hidden": H, "layers": L, "batch": B, "seq_len": T,
            "dropout": {"policy": policy or "none", "p": p, "sites": list(sites)},
            "inputs": inputs.reshape(-1).tolist(),
            "targets": targets.reshape(-1).tolist(),
            "params": {k: {"shape": list(params[k].shape), "data": tolist(params[k])}
                       for k in PARAM_NAMES},
            "h0": [tolist(x) for x in h0],
            "c0": [tolist(x) for x in c0],
            "masks": {k: mask_json(masks[k]) for k in ("input", "between", "output", "recurrent")},
            "loss": loss.item(),
            "grads": {k: tolist(params[k].grad) for k in PARAM_NAMES},
            "h_final": [tolist(x) for x in h],
            "c_final": [tolist(x) for x in c],
        }
        path = os.path.join(OUT_DIR, f"lm_golden_{name}.json")
        with open(path, "w") as f:
            f.write(dump(obj))
        print(f"{os.path.relpath(path)}: loss {loss.item():.12f}")


if __name__ == "__main__":
    main()

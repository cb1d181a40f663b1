"""Independent reference forward pass for lorakit's ViT image classifier.

Builds ViTForImageClassification from plain tensor ops (no torch.nn modules, no transformers) from a Hugging Face
model directory (config.json + model.safetensors) and writes the logits.

usage: vit_ref.py MODEL_DIR INPUTS.safetensors OUT.safetensors
INPUTS holds pixel_values (float [B, C, H, W]). Computes in float64. OUT holds {"logits": float64 [B, num_labels]}.

Architecture (as in transformers' models/vit/modeling_vit.py):
  patches = Conv2d(kernel = stride = patch_size, no padding)(pixels), flattened row-major over the patch grid
  x = cat(cls_token, patches) + position_embeddings (patch part bicubic-resized when the grid differs, see below)
  per layer (pre-LN): x = x + dense(attn(layernorm_before(x)));  x = x + output.dense(act(intermediate.dense(
                      layernorm_after(x))))
  logits = classifier(vit.layernorm(x)[:, 0])
"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402


def pair(v):
    return (int(v[0]), int(v[1])) if isinstance(v, (list, tuple)) else (int(v), int(v))


def main():
    model_dir, inputs_path, out_path = sys.argv[1:4]
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    if cfg.get("model_type", "vit") != "vit":
        raise SystemExit("oracle: not a vit config: " + str(cfg.get("model_type")))
    w = {k: v.double() for k, v in st_io.load(os.path.join(model_dir, "model.safetensors")).items()}
    px = st_io.load(inputs_path)["pixel_values"].double()
    B, C, Hi, Wi = px.shape
    # ViTConfig defaults
    D = cfg.get("hidden_size", 768)
    nh = cfg.get("num_attention_heads", 12)
    hd = D // nh
    eps = cfg.get("layer_norm_eps", 1e-12)
    act = cfg.get("hidden_act", "gelu")
    ph, pw = pair(cfg.get("patch_size", 16))
    if C != cfg.get("num_channels", 3):
        raise SystemExit("oracle: channel count does not match num_channels")
    p = "vit."

    def ln(x, name):
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(var + eps) * w[name + ".weight"] + w[name + ".bias"]

    def lin(x, name):
        y = x @ w[name + ".weight"].T
        b = w.get(name + ".bias")  # query/key/value have no bias when qkv_bias is false
        return y if b is None else y + b

    def activation(x):
        if act == "gelu":
            return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
        if act in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
            return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
        if act == "relu":
            return x.clamp_min(0)
        raise SystemExit("oracle: unsupported activation " + act)

    # ---- patch embedding as an explicit unfold + matmul (Conv2d with stride = kernel drops any remainder)
    gh, gw = Hi // ph, Wi // pw
    x = px[:, :, :gh * ph, :gw * pw].reshape(B, C, gh, ph, gw, pw).permute(0, 2, 4, 1, 3, 5)  # B,gh,gw,C,ph,pw
    x = x.reshape(B, gh * gw, C * ph * pw)
    kern = w[p + "embeddings.patch_embeddings.projection.weight"].reshape(D, C * ph * pw)
    x = x @ kern.T + w[p + "embeddings.patch_embeddings.projection.bias"]

    # ---- position embeddings, interpolated like ViTEmbeddings.interpolate_pos_encoding in recent transformers
    # (rule followed: transformers main at revision 005db820 (v4.48-era), the `size=(new_h, new_w)` form that replaced
    # the older `scale_factor=(h0 + 0.1) / sqrt(N)` form). Kept as is when num_patches == N and H == W; otherwise the
    # cls position is kept and the sqrt(N) x sqrt(N) patch grid is bicubic-resized (align_corners=False) to
    # (H // patch, W // patch).
    pos = w[p + "embeddings.position_embeddings"]                                   # [1, N+1, D]
    n_pos = pos.shape[1] - 1
    if not (gh * gw == n_pos and Hi == Wi):
        side = int(n_pos ** 0.5)
        if side * side != n_pos:
            raise SystemExit("oracle: position grid is not square")
        grid = pos[:, 1:].reshape(1, side, side, D).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(gh, gw), mode="bicubic", align_corners=False)
        pos = torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, gh * gw, D)], 1)
    cls = w[p + "embeddings.cls_token"].expand(B, 1, D)
    h = torch.cat([cls, x], 1) + pos
    T = h.shape[1]

    def heads(t):
        return t.reshape(B, T, nh, hd).permute(0, 2, 1, 3)

    for i in range(cfg.get("num_hidden_layers", 12)):
        q = p + f"encoder.layer.{i}."
        n = ln(h, q + "layernorm_before")
        Q, K, V = (heads(lin(n, q + "attention.attention." + k)) for k in ("query", "key", "value"))
        a = torch.softmax(Q @ K.transpose(-1, -2) / math.sqrt(hd), -1) @ V
        a = a.permute(0, 2, 1, 3).reshape(B, T, D)
        h = lin(a, q + "attention.output.dense") + h
        f = activation(lin(ln(h, q + "layernorm_after"), q + "intermediate.dense"))
        h = lin(f, q + "output.dense") + h

    logits = lin(ln(h, p + "layernorm")[:, 0], "classifier")
    st_io.save(out_path, {"logits": logits})


if __name__ == "__main__":
    main()

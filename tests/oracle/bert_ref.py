"""Independent reference forward pass for lorakit's BERT / RoBERTa sequence classifier.

Builds the network from plain tensor ops (no torch.nn modules, no transformers) from a Hugging Face
model directory (config.json + model.safetensors) and writes the logits.

usage: bert_ref.py MODEL_DIR INPUTS.safetensors OUT.safetensors
INPUTS holds input_ids, attention_mask, token_type_ids (int64 [B, T]). Computes in float64.
"""
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402


def main():
    model_dir, inputs_path, out_path = sys.argv[1:4]
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    w = {k: v.double() for k, v in st_io.load(os.path.join(model_dir, "model.safetensors")).items()}
    inp = st_io.load(inputs_path)
    ids, mask, tt = inp["input_ids"], inp["attention_mask"], inp["token_type_ids"]
    roberta = cfg["model_type"] == "roberta"
    p = "roberta." if roberta else "bert."
    eps = cfg.get("layer_norm_eps", 1e-12)
    H, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    hd = H // nh

    def ln(x, name):
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(var + eps) * w[name + ".weight"] + w[name + ".bias"]

    def lin(x, name):
        return x @ w[name + ".weight"].T + w[name + ".bias"]

    B, T = ids.shape
    if roberta:
        pad = cfg["pad_token_id"]
        m = (ids != pad).long()
        pos = torch.cumsum(m, 1) * m + pad
    else:
        pos = torch.arange(T).unsqueeze(0).expand(B, T)
    e = w[p + "embeddings.word_embeddings.weight"][ids] + w[p + "embeddings.position_embeddings.weight"][pos] \
        + w[p + "embeddings.token_type_embeddings.weight"][tt]
    h = ln(e, p + "embeddings.LayerNorm")
    bias = (1.0 - mask.double())[:, None, None, :] * torch.finfo(torch.float64).min
    act = cfg.get("hidden_act", "gelu")
    for i in range(cfg["num_hidden_layers"]):
        q = p + f"encoder.layer.{i}."

        def heads(x):
            return x.view(B, T, nh, hd).permute(0, 2, 1, 3)

        Q, K, V = (heads(lin(h, q + "attention.self." + n)) for n in ("query", "key", "value"))
        s = Q @ K.transpose(-1, -2) / math.sqrt(hd) + bias
        a = torch.softmax(s, -1) @ V
        a = a.permute(0, 2, 1, 3).reshape(B, T, H)
        h1 = ln(lin(a, q + "attention.output.dense") + h, q + "attention.output.LayerNorm")
        f = lin(h1, q + "intermediate.dense")
        if act == "gelu":
            f = 0.5 * f * (1.0 + torch.erf(f / math.sqrt(2.0)))
        elif act == "relu":
            f = f.clamp_min(0)
        else:
            raise SystemExit("oracle: unsupported activation " + act)
        h = ln(lin(f, q + "output.dense") + h1, q + "output.LayerNorm")
    if roberta:
        x = torch.tanh(lin(h[:, 0], "classifier.dense"))
        logits = lin(x, "classifier.out_proj")
    else:
        pooled = torch.tanh(lin(h[:, 0], p + "pooler.dense"))
        logits = lin(pooled, "classifier")
    st_io.save(out_path, {"logits": logits})


if __name__ == "__main__":
    main()

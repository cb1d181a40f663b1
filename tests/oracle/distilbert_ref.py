"""Independent reference forward pass for lorakit's DistilBERT sequence classifier.

Builds DistilBertForSequenceClassification from plain tensor ops (no torch.nn modules, no transformers) from a
Hugging Face model directory (config.json + model.safetensors) and writes the logits.

usage: distilbert_ref.py MODEL_DIR INPUTS.safetensors OUT.safetensors
INPUTS holds input_ids and attention_mask (int64 [B, T]); token_type_ids, if present, is ignored (DistilBERT has no
segment embeddings). Computes in float64. OUT holds {"logits": float64 [B, num_labels]}.

Architecture (as in transformers' models/distilbert/modeling_distilbert.py):
  e = word[ids] + pos[arange(T)];  h = LN(e)                       (all LayerNorms: eps 1e-12)
  per layer: a = out_lin(softmax(q_lin(h)/sqrt(d) . k_lin(h)^T  with padded *keys* masked) . v_lin(h))
             h1 = sa_layer_norm(a + h);  h = output_layer_norm(lin2(act(lin1(h1))) + h1)
  logits = classifier(relu(pre_classifier(h[:, 0])))
"""
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402


def sinusoids(n_pos, dim):
    # Same table transformers writes into position_embeddings when sinusoidal_pos_embds is true (computed in float64,
    # stored as float32). Only used when the checkpoint lacks the weight; normally the weight is saved with the model.
    j = torch.arange(dim, dtype=torch.float64)
    pos = torch.arange(n_pos, dtype=torch.float64)[:, None]
    ang = pos / torch.pow(torch.tensor(10000.0, dtype=torch.float64), 2 * torch.div(j, 2, rounding_mode="floor") / dim)
    out = torch.empty(n_pos, dim, dtype=torch.float64)
    out[:, 0::2] = torch.sin(ang[:, 0::2])
    out[:, 1::2] = torch.cos(ang[:, 1::2])
    return out.float().double()


def main():
    model_dir, inputs_path, out_path = sys.argv[1:4]
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    if cfg.get("model_type", "distilbert") != "distilbert":
        raise SystemExit("oracle: not a distilbert config: " + str(cfg.get("model_type")))
    w = {k: v.double() for k, v in st_io.load(os.path.join(model_dir, "model.safetensors")).items()}
    inp = st_io.load(inputs_path)
    ids = inp["input_ids"].long()
    B, T = ids.shape
    mask = inp["attention_mask"].long() if "attention_mask" in inp else torch.ones(B, T, dtype=torch.long)
    D = cfg.get("dim", 768)
    nh = cfg.get("n_heads", 12)
    hd = D // nh
    eps = 1e-12  # DistilBERT hard-codes eps=1e-12 for every LayerNorm (no config key)
    act = cfg.get("activation", "gelu")
    p = "distilbert."

    def ln(x, name):
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(var + eps) * w[name + ".weight"] + w[name + ".bias"]

    def lin(x, name):
        return x @ w[name + ".weight"].T + w[name + ".bias"]

    def activation(x):
        if act == "gelu":
            return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
        if act == "relu":
            return x.clamp_min(0)
        raise SystemExit("oracle: unsupported activation " + act)

    pos_name = p + "embeddings.position_embeddings.weight"
    if pos_name in w:
        pos_table = w[pos_name]
    elif cfg.get("sinusoidal_pos_embds", False):
        pos_table = sinusoids(cfg.get("max_position_embeddings", 512), D)
    else:
        raise SystemExit("oracle: checkpoint lacks " + pos_name)
    if T > pos_table.shape[0]:
        raise SystemExit("oracle: sequence longer than max_position_embeddings")
    e = w[p + "embeddings.word_embeddings.weight"][ids] + pos_table[:T].unsqueeze(0)
    h = ln(e, p + "embeddings.LayerNorm")

    # DistilBERT masks keys only: scores[b, :, i, j] = finfo.min where mask[b, j] == 0 (query rows are not masked).
    key_masked = (mask == 0)[:, None, None, :]
    neg = torch.finfo(torch.float64).min

    def heads(x):
        return x.reshape(B, T, nh, hd).permute(0, 2, 1, 3)

    for i in range(cfg.get("n_layers", 6)):
        q = p + f"transformer.layer.{i}."
        Q = heads(lin(h, q + "attention.q_lin")) / math.sqrt(hd)
        K = heads(lin(h, q + "attention.k_lin"))
        V = heads(lin(h, q + "attention.v_lin"))
        s = (Q @ K.transpose(-1, -2)).masked_fill(key_masked, neg)
        a = (torch.softmax(s, -1) @ V).permute(0, 2, 1, 3).reshape(B, T, D)
        h1 = ln(lin(a, q + "attention.out_lin") + h, q + "sa_layer_norm")
        f = lin(activation(lin(h1, q + "ffn.lin1")), q + "ffn.lin2")
        h = ln(f + h1, q + "output_layer_norm")

    x = lin(h[:, 0], "pre_classifier").clamp_min(0)
    logits = lin(x, "classifier")
    st_io.save(out_path, {"logits": logits})


if __name__ == "__main__":
    main()

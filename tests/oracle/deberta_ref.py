"""Independent reference forward pass for lorakit's DeBERTa-v2 / v3 sequence classifier.

Builds DebertaV2ForSequenceClassification from plain tensor ops (no torch.nn modules, no transformers) from a
Hugging Face model directory (config.json + model.safetensors) and writes the logits.

usage: deberta_ref.py MODEL_DIR INPUTS.safetensors OUT.safetensors
INPUTS holds input_ids, attention_mask, token_type_ids (int64 [B, T]; attention_mask / token_type_ids default to
ones / zeros when absent). Computes in float64. OUT holds {"logits": float64 [B, num_labels]}.

Follows transformers' models/deberta_v2/modeling_deberta_v2.py as read at the v4.2x revisions 0038a3ca / 967ed0db
(the later build_rpos / scaled_size_sqrt refactor keeps the same arithmetic for equal query/key lengths):
  embeddings: x = word[ids] (+ pos[arange(T)] if position_biased_input) (+ tok_type[tt] if type_vocab_size > 0)
              (embed_proj, no bias, if embedding_size != hidden_size); x = LN(x) * attention_mask[..., None]
  relative positions: rel[i, j] = bucket(i - j) (log buckets when position_buckets > 0), att_span S =
              position_buckets if > 0 else max_relative_positions (< 1 means max_position_embeddings);
              R = rel_embeddings[0:2S] (LayerNorm'd by encoder.LayerNorm when norm_rel_ebd has "layer_norm")
  attention:  scores = Q K^T / sqrt(d*sf)
                       + [c2p] Q_i . PK[clamp(rel[i,j] + S, 0, 2S-1)] / sqrt(d*sf)
                       + [p2c] K_j . PQ[clamp(-rel[j,i] + S, 0, 2S-1)] / sqrt(d*sf)
              sf = 1 + (#c2p) + (#p2c); PK/PQ = key_proj/query_proj of R (share_att_key) or pos_key_proj /
              pos_query_proj of R. XSoftmax with the 2-D mask m[b,i]*m[b,j]: masked scores -> finfo.min, softmax,
              masked probabilities -> 0 (so a fully padded query row attends to nothing and its context is 0).
  post-LN blocks like BERT; head: classifier(act_pool(pooler.dense(h[:, 0]))).
"""
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402


def log_bucket_position(rel, bucket_size, max_position):
    """make_log_bucket_position, evaluated exactly like transformers does it: the log/ceil part in float32
    (transformers divides an int64 tensor by a Python int, which yields torch's default dtype, float32), so the
    integer bucket ids match bit for bit.

      mid = bucket_size // 2
      abs = mid - 1                   if -mid < rel < mid   else |rel|
      log_pos = ceil( log(abs / mid) / log((max_position - 1) / mid) * (mid - 1) ) + mid      [float32]
      bucket = rel                    if abs <= mid        else sign(rel) * log_pos
    """
    mid = bucket_size // 2
    sign = torch.sign(rel)
    abs_pos = torch.where((rel < mid) & (rel > -mid), torch.full_like(rel, mid - 1), rel.abs())
    f32 = torch.float32
    denom = torch.log(torch.tensor((max_position - 1) / mid, dtype=f32))
    log_pos = torch.ceil(torch.log(abs_pos.to(f32) / mid) / denom * (mid - 1)) + mid
    bucket = torch.where(abs_pos <= mid, rel.to(f32), log_pos * sign.to(f32))
    return bucket.long()


def relative_positions(q_len, k_len, bucket_size, max_position):
    # rel[i, j] = position of query i minus position of key j (then bucketed), shape [q_len, k_len]
    rel = torch.arange(q_len)[:, None] - torch.arange(k_len)[None, :]
    if bucket_size > 0 and max_position > 0:
        rel = log_bucket_position(rel, bucket_size, max_position)
    return rel


def main():
    model_dir, inputs_path, out_path = sys.argv[1:4]
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    if cfg.get("model_type") != "deberta-v2":
        raise SystemExit("oracle: not a deberta-v2 config: " + str(cfg.get("model_type")))
    w = {k: v.double() for k, v in st_io.load(os.path.join(model_dir, "model.safetensors")).items()}
    inp = st_io.load(inputs_path)
    ids = inp["input_ids"].long()
    B, T = ids.shape
    mask = inp["attention_mask"].long() if "attention_mask" in inp else torch.ones(B, T, dtype=torch.long)
    tt = inp["token_type_ids"].long() if "token_type_ids" in inp else torch.zeros(B, T, dtype=torch.long)

    # DebertaV2Config defaults (used when a key is absent from config.json)
    H = cfg.get("hidden_size", 1536)
    nh = cfg.get("num_attention_heads", 24)
    hd = cfg.get("attention_head_size", H // nh)
    eps = cfg.get("layer_norm_eps", 1e-7)
    act = cfg.get("hidden_act", "gelu")
    pool_act = cfg.get("pooler_hidden_act", "gelu")
    max_pos = cfg.get("max_position_embeddings", 512)
    type_vocab = cfg.get("type_vocab_size", 0)
    emb_size = cfg.get("embedding_size", H)
    pos_biased = cfg.get("position_biased_input", True)
    relative = cfg.get("relative_attention", False)
    share = cfg.get("share_att_key", False)
    buckets = cfg.get("position_buckets", -1)
    max_rel = cfg.get("max_relative_positions", -1)
    if max_rel < 1:
        max_rel = max_pos
    span = buckets if buckets > 0 else max_rel
    pat = cfg.get("pos_att_type") or []
    if isinstance(pat, str):
        pat = [x.strip() for x in pat.lower().split("|")]
    pat = [x for x in pat if x]
    for t in pat:
        if t not in ("c2p", "p2c"):
            raise SystemExit("oracle: unsupported pos_att_type " + t)
    c2p, p2c = "c2p" in pat, "p2c" in pat
    scale_factor = 1 + int(c2p) + int(p2c)
    norm_rel = [x.strip() for x in str(cfg.get("norm_rel_ebd", "none")).lower().split("|")]
    if cfg.get("conv_kernel_size", 0) > 0:
        raise SystemExit("oracle: unsupported conv_kernel_size > 0 (DeBERTa-v2 ConvLayer)")

    def ln(x, name):
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(var + eps) * w[name + ".weight"] + w[name + ".bias"]

    def lin(x, name):
        y = x @ w[name + ".weight"].T
        b = w.get(name + ".bias")
        return y if b is None else y + b

    def activation(x, kind):
        if kind == "gelu":
            return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
        if kind == "relu":
            return x.clamp_min(0)
        if kind == "tanh":
            return torch.tanh(x)
        raise SystemExit("oracle: unsupported activation " + kind)

    p = "deberta."
    # ---- embeddings
    e = w[p + "embeddings.word_embeddings.weight"][ids]
    if pos_biased:
        e = e + w[p + "embeddings.position_embeddings.weight"][:T].unsqueeze(0)
    if type_vocab > 0:
        e = e + w[p + "embeddings.token_type_embeddings.weight"][tt]
    if emb_size != H:
        e = lin(e, p + "embeddings.embed_proj")
    h = ln(e, p + "embeddings.LayerNorm") * mask.double().unsqueeze(-1)

    # ---- relative position machinery (shared by all layers)
    if relative:
        R = w[p + "encoder.rel_embeddings.weight"]
        if "layer_norm" in norm_rel:
            R = ln(R, p + "encoder.LayerNorm")
        R = R[0:2 * span]
        rel = relative_positions(T, T, buckets, max_rel)                      # [T, T]
        c2p_idx = torch.clamp(rel + span, 0, 2 * span - 1)                   # [Tq, Tk]
        # p2c: transformers gathers rows of K.PQ^T (indexed by key) with clamp(-r_pos + span) where r_pos is the same
        # [q, k] relative matrix (q == k here), then transposes the result.
        p2c_idx = torch.clamp(-rel + span, 0, 2 * span - 1)                  # [Tk, Tq] after the transpose below

    # ---- XSoftmax mask: allowed[b, i, j] = mask[b, i] * mask[b, j]
    allowed = (mask[:, :, None] * mask[:, None, :]).bool()[:, None]          # [B, 1, T, T]
    neg = torch.finfo(torch.float64).min
    scale = math.sqrt(hd * scale_factor)

    def heads(x):  # [..., L, nh*hd] -> [..., nh, L, hd]
        return x.reshape(*x.shape[:-1], nh, hd).transpose(-2, -3)

    for i in range(cfg.get("num_hidden_layers", 24)):
        q = p + f"encoder.layer.{i}."
        a = q + "attention.self."
        Q = heads(lin(h, a + "query_proj"))                                   # [B, nh, T, hd]
        K = heads(lin(h, a + "key_proj"))
        V = heads(lin(h, a + "value_proj"))
        s = Q @ K.transpose(-1, -2) / scale
        if relative:
            if c2p:
                PK = heads(lin(R, a + ("key_proj" if share else "pos_key_proj")))       # [nh, 2S, hd]
                full = Q @ PK.transpose(-1, -2)                                          # [B, nh, Tq, 2S]
                s = s + torch.gather(full, -1, c2p_idx.expand(B, nh, T, T)) / scale
            if p2c:
                PQ = heads(lin(R, a + ("query_proj" if share else "pos_query_proj")))   # [nh, 2S, hd]
                full = K @ PQ.transpose(-1, -2)                                          # [B, nh, Tk, 2S]
                g = torch.gather(full, -1, p2c_idx.expand(B, nh, T, T))                  # [B, nh, Tk, Tq]
                s = s + g.transpose(-1, -2) / scale
        s = s.masked_fill(~allowed, neg)
        probs = torch.softmax(s, -1).masked_fill(~allowed, 0.0)
        ctx = (probs @ V).transpose(1, 2).reshape(B, T, nh * hd)
        h1 = ln(lin(ctx, q + "attention.output.dense") + h, q + "attention.output.LayerNorm")
        f = activation(lin(h1, q + "intermediate.dense"), act)
        h = ln(lin(f, q + "output.dense") + h1, q + "output.LayerNorm")

    pooled = activation(lin(h[:, 0], "pooler.dense"), pool_act)
    logits = lin(pooled, "classifier")
    st_io.save(out_path, {"logits": logits})


if __name__ == "__main__":
    main()

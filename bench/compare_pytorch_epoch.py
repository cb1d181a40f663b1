#!/usr/bin/python3
"""PyTorch-eager side of `bench/compare_pytorch mrpc-epoch`: one epoch of LoRA fine-tuning on the first
N rows of GLUE MRPC train.tsv, batched as a Hugging Face Trainer with DataCollatorWithPadding does it
(a seeded random permutation of the rows, consecutive batches of B rows, each padded to its own longest
row, no length grouping), with the model of bench/compare_pytorch.py (its plain-tensor BERT, imported
from there) initialised from the model directory that lorakit trains, so both sides start from the
same base weights.

Runs under Debian's /usr/bin/python3 (python3-torch 1.13). Three subcommands, which the driver runs:

  texts   --tsv TRAIN.TSV --rows N --out TEXTS [--subset-tsv SUB --subset-rows K]
          sentence1 and sentence2 of the first N rows (as lorakit's --max-train-samples N takes them:
          src/tasks/glue/task.cpp read_glue_subset, first rows unless a sweep asks for random ones),
          one text per line, a1 b1 a2 b2 ...; for `lorakit tokenize --no-special-tokens --input TEXTS`.
          --subset-tsv: the first K of those rows as an MRPC TSV, for `lorakit predict`.
  verify  --tsv --rows --tokens TOK.jsonl --max-len L --model DIR --logits PRED.jsonl --k K
          builds [CLS] a [SEP] b [SEP] (token types 0 / 1, longest-first truncation) for the first K rows
          and runs the base model (eval mode, lorakit's weights) on them: the logits must equal the ones
          `lorakit predict --logits` wrote for the same rows, which lorakit computed from its own
          encoding (text::Tokenizer::encode). Also shows the check is sensitive to the ids (token types
          all 0 change the logits by far more than the tolerance).
  train   --tsv --rows --tokens --max-len --batch --model DIR [--threads T] [--seed S]
          the timed epoch; prints one JSON line (epoch seconds, peak RSS, padded tokens per batch, ...).

The training step is lorakit's (src/train/trainer.cpp StepRunner, with the CLI defaults of
`lorakit train`): forward (dropout 0.1 hidden / attention / classifier) -> cross entropy mean ->
zero_grad -> backward -> clip_grad_norm_(trainable, 1.0) -> learning rate lr * factor with
factor = (step + 1) / warmup during warm-up and (total - step) / (total - warmup) after it,
warmup = ceil(0.06 * total) -> AdamW(lr 5e-4, betas 0.9 / 0.999, eps 1e-8, weight decay 0.01, none on
biases and LayerNorm). Trainable: LoRA A / B (r 8, alpha 16, lora dropout 0; A Kaiming-uniform
a = sqrt(5), B zero) on query and value, plus the classifier (modules_to_save). Timed: the loop over
the epoch's batches, collation (padding) included, as lorakit's train_seconds times its loop.
"""
import argparse
import json
import math
import os
import resource
import statistics
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
sys.dont_write_bytecode = True  # no bench/__pycache__ from importing compare_pytorch

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
    import compare_pytorch as cp  # noqa: E402  (its forward, build_params, is_no_decay, blas_core)
except ImportError as ex:
    sys.exit("compare_pytorch_epoch.py: %s; run it with /usr/bin/python3 (Debian's python3-torch)" % ex)


# ----------------------------------------------------------------------------------------------
# MRPC rows, read as src/text/glue.cpp read_glue_file reads them
def read_mrpc(path, rows):
    out = []
    header = None
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.rstrip(b"\n")
            if lineno == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line.strip(b" \t"):
                continue
            cols = line.split(b"\t")
            if header is None:
                names = [c.strip(b" \t\r\n").decode() for c in cols]
                header = (len(names), names.index("#1 String"), names.index("#2 String"), names.index("Quality"))
                continue
            n, ia, ib, il = header
            if len(cols) != n:
                sys.exit("compare_pytorch_epoch.py: %s:%d: expected %d columns, got %d" % (path, lineno, n, len(cols)))
            label = cols[il].strip(b" \t\r\n").decode()
            if label not in ("0", "1"):
                sys.exit("compare_pytorch_epoch.py: %s:%d: label %r is not 0 or 1" % (path, lineno, label))
            out.append((cols[ia], cols[ib], int(label), line))
            if rows > 0 and len(out) == rows:
                break
    return out


def cmd_texts(a):
    rows = read_mrpc(a.tsv, a.rows)
    with open(a.out, "wb") as f:
        for ta, tb, _, _ in rows:
            for t in (ta, tb):
                if b"\n" in t or b"\r" in t:
                    sys.exit("compare_pytorch_epoch.py: a text holds a line break; cannot pass it one per line")
                f.write(t + b"\n")
    if a.subset_tsv:
        with open(a.subset_tsv, "wb") as f:
            f.write(b"Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n")
            for ta, tb, label, _ in rows[:a.subset_rows]:
                f.write(b"%d\t0\t0\t%s\t%s\n" % (label, ta, tb))
    print(json.dumps({"rows": len(rows), "texts": 2 * len(rows)}))
    return 0


# ----------------------------------------------------------------------------------------------
# Pair encoding: [CLS] a [SEP] b [SEP], token types 0 for "[CLS] a [SEP]" and 1 for "b [SEP]";
# truncation="longest_first" to max_len tokens in all: one token at a time off the end of the longer
# text, off b when they are equally long (Hugging Face's Python truncate_sequences; lorakit's
# text::detail::truncate_longest_first).
def truncate_longest_first(a, b, budget, ties_off_a=False):
    la, lb = len(a), len(b)
    while la + lb > budget:
        if la > lb or (ties_off_a and la == lb):
            la -= 1
        else:
            lb -= 1
    return a[:la], b[:lb]


def encode_pairs(rows, tokens_path, max_len, cls_id, sep_id, ties_off_a=False):
    toks = []
    with open(tokens_path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                toks.append(json.loads(line)["ids"])
    if len(toks) != 2 * len(rows):
        sys.exit("compare_pytorch_epoch.py: %s has %d tokenized texts, expected %d (two per row)"
                 % (tokens_path, len(toks), 2 * len(rows)))
    enc, truncated = [], []
    for i, (_, _, label, _) in enumerate(rows):
        a, b = toks[2 * i], toks[2 * i + 1]
        ta, tb = truncate_longest_first(a, b, max_len - 3, ties_off_a)
        truncated.append((len(ta), len(tb)) != (len(a), len(b)))
        ids = [cls_id] + ta + [sep_id] + tb + [sep_id]
        tt = [0] * (len(ta) + 2) + [1] * (len(tb) + 1)
        enc.append((ids, tt, label))
    return enc, truncated


def special_ids(model_dir):
    vocab = {}
    with open(os.path.join(model_dir, "vocab.txt"), encoding="utf-8") as f:
        for i, line in enumerate(f):
            vocab.setdefault(line.rstrip("\n").rstrip("\r"), i)
    return vocab["[CLS]"], vocab["[SEP]"], vocab["[PAD]"]


def collate(enc, idx, pad_id):
    """DataCollatorWithPadding: pad to the longest row of the batch (right padding, mask 0 there)."""
    T = max(len(enc[i][0]) for i in idx)
    B = len(idx)
    ids = torch.full((B, T), pad_id, dtype=torch.long)
    tt = torch.zeros(B, T, dtype=torch.long)
    mask = torch.zeros(B, T, dtype=torch.long)
    for r, i in enumerate(idx):
        x, t, _ = enc[i]
        n = len(x)
        ids[r, :n] = torch.tensor(x, dtype=torch.long)
        tt[r, :n] = torch.tensor(t, dtype=torch.long)
        mask[r, :n] = 1
    labels = torch.tensor([enc[i][2] for i in idx], dtype=torch.long)
    return ids, mask, tt, labels


# ----------------------------------------------------------------------------------------------
# lorakit's batches (src/text/batching.cpp make_batches: mt19937_64, its own Fisher-Yates and unbiased
# bounded draw, HF-style length-grouped mega-batches), to count the padding lorakit's epoch has.
M64 = (1 << 64) - 1


class MT19937_64:
    def __init__(self, seed):
        self.mt = [0] * 312
        self.mt[0] = seed & M64
        for i in range(1, 312):
            p = self.mt[i - 1]
            self.mt[i] = (6364136223846793005 * (p ^ (p >> 62)) + i) & M64
        self.i = 312

    def _twist(self):
        mt = self.mt
        for k in range(312):
            x = (mt[k] & 0xFFFFFFFF80000000) | (mt[(k + 1) % 312] & 0x7FFFFFFF)
            xa = x >> 1
            if x & 1:
                xa ^= 0xB5026F5AA96619E9
            mt[k] = mt[(k + 156) % 312] ^ xa
        self.i = 0

    def __call__(self):
        if self.i >= 312:
            self._twist()
        y = self.mt[self.i]
        self.i += 1
        y ^= (y >> 29) & 0x5555555555555555
        y ^= (y << 17) & 0x71D67FFFEDA60000
        y ^= (y << 37) & 0xFFF7EEE000000000
        y ^= y >> 43
        return y & M64


def _mt_self_test():
    g = MT19937_64(5489)  # the C++ standard's check: the 10000th output of a default-constructed engine
    for _ in range(9999):
        g()
    return g() == 9981545732273789042


def uniform_below(g, bound):
    threshold = ((1 << 64) - bound) % bound
    while True:
        r = g()
        if r >= threshold:
            return r % bound


def fisher_yates(v, g):
    for i in range(len(v), 1, -1):
        j = uniform_below(g, i)
        if j != i - 1:
            v[i - 1], v[j] = v[j], v[i - 1]


def lorakit_batches(lengths, batch, seed, group=True, mult=50):
    n = len(lengths)
    order = list(range(n))
    g = MT19937_64(seed)
    fisher_yates(order, g)
    if not group:
        return [order[b:b + batch] for b in range(0, n, batch)]
    mega = n if mult > n // batch + 1 else batch * mult
    out = []
    for m in range(0, n, max(mega, 1)):
        end = min(n, m + max(mega, 1))
        seg = sorted(order[m:end], key=lambda i: -lengths[i])  # stable, longest first
        out += [seg[b:min(len(seg), b + batch)] for b in range(0, len(seg), batch)]
    fisher_yates(out, g)
    return out


def padded_per_batch(batches, lengths):
    return statistics.mean(len(b) * max(lengths[i] for i in b) for b in batches)


# ----------------------------------------------------------------------------------------------
def load_base(model_dir):
    """model.safetensors -> name -> tensor, read straight into each tensor (no copy of the file in memory,
    so the peak RSS is the model's, not the model's plus the file's)."""
    path = os.path.join(model_dir, "model.safetensors")
    dt = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16}
    out = {}
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        base = 8 + n
        for name, info in header.items():
            if name == "__metadata__":
                continue
            b, e = info["data_offsets"]
            raw = torch.empty(e - b, dtype=torch.uint8)
            view = memoryview(raw.numpy())
            f.seek(base + b)
            got = 0
            while got < len(view):
                k = f.readinto(view[got:])
                if not k:
                    sys.exit("compare_pytorch_epoch.py: %s: short read" % path)
                got += k
            t = raw.view(dt[info["dtype"]]).reshape(info["shape"])
            out[name] = t.float() if t.dtype != torch.float32 else t
    return out


def model_cfg(model_dir, r, dropout):
    with open(os.path.join(model_dir, "config.json")) as f:
        c = json.load(f)
    if c.get("model_type") != "bert":
        sys.exit("compare_pytorch_epoch.py: %s is model_type %r; this benchmark is BERT only" % (model_dir, c.get("model_type")))
    ns = argparse.Namespace(layers=c["num_hidden_layers"], hidden=c["hidden_size"], heads=c["num_attention_heads"],
                            intermediate=c["intermediate_size"], vocab=c["vocab_size"], dropout=dropout, r=r)
    cfg = cp.Cfg(ns)
    cfg.max_pos, cfg.type_vocab = c.get("max_position_embeddings", 512), c.get("type_vocab_size", 2)
    cfg.eps = c.get("layer_norm_eps", 1e-12)
    cfg.pad = c.get("pad_token_id", 0)
    cfg.labels = len(c.get("id2label", {})) or 2
    return cfg


def cmd_verify(a):
    cls_id, sep_id, pad_id = special_ids(a.model)
    # the tokens file holds the texts of all --rows rows; the check takes the first k
    enc, truncated = encode_pairs(read_mrpc(a.tsv, a.rows), a.tokens, a.max_len, cls_id, sep_id)
    enc, truncated = enc[:a.k], truncated[:a.k]
    # the same with ties cut off a instead of b: differs where a row's truncation reaches a tie
    alt = encode_pairs(read_mrpc(a.tsv, a.rows), a.tokens, a.max_len, cls_id, sep_id, ties_off_a=True)[0][:a.k]
    alt_rows = [i for i in range(len(enc)) if alt[i][0] != enc[i][0]]
    cfg = model_cfg(a.model, 8, 0.0)
    P = load_base(a.model)
    with open(a.logits) as f:
        lk = [json.loads(l)["logits"] for l in f if l.strip()]
    if len(lk) != len(enc):
        sys.exit("compare_pytorch_epoch.py: %s has %d rows of logits, expected %d" % (a.logits, len(lk), len(enc)))
    lk = torch.tensor(lk, dtype=torch.float32)
    idx = list(range(len(enc)))
    with torch.no_grad():
        ids, mask, tt, _ = collate(enc, idx, pad_id)
        mine = cp.forward(P, cfg, ids, mask, tt, training=False)
        wrong = cp.forward(P, cfg, ids, mask, torch.zeros_like(tt), training=False)
        if alt_rows:
            ids2, mask2, tt2, _ = collate(alt, alt_rows, pad_id)
            alt_diff = float((cp.forward(P, cfg, ids2, mask2, tt2, training=False) - lk[alt_rows]).abs().max())
    diff = float((mine - lk).abs().max())
    sens = float((wrong - lk).abs().max())
    lens = [len(e[0]) for e in enc]
    out = {"check": "pair ids via logits", "rows": len(enc), "max_len": a.max_len, "lengths": lens,
           "truncated_rows": sum(truncated),
           "max_abs_logit_diff": diff, "tolerance": a.tol,
           "max_abs_logit_diff_token_types_zeroed": sens}
    if alt_rows:
        out["rows_where_ties_off_a_differ"] = len(alt_rows)
        out["max_abs_logit_diff_ties_off_a"] = alt_diff
    out["ok"] = diff <= a.tol and sens > 10 * a.tol and (not alt_rows or alt_diff > 10 * a.tol)
    print(json.dumps(out))
    return 0 if out["ok"] else 1


# ----------------------------------------------------------------------------------------------
def cmd_train(a):
    threads = a.threads if a.threads > 0 else len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    rows = read_mrpc(a.tsv, a.rows)
    cls_id, sep_id, pad_id = special_ids(a.model)
    enc, truncated = encode_pairs(rows, a.tokens, a.max_len, cls_id, sep_id)
    lengths = [len(e[0]) for e in enc]
    cfg = model_cfg(a.model, a.r, a.dropout)

    # parameters: lorakit's base weights + fresh LoRA (seed 0), trainable LoRA + classifier
    torch.manual_seed(0)
    P = load_base(a.model)
    for i in range(cfg.layers):
        for n in cfg.targets:
            m = "bert.encoder.layer.%d.attention.self.%s." % (i, n)
            A = torch.empty(cfg.r, cfg.hidden)
            torch.nn.init.kaiming_uniform_(A, a=math.sqrt(5))
            P[m + "lora_A.weight"] = A
            P[m + "lora_B.weight"] = torch.zeros(cfg.hidden, cfg.r)
    train = set(cp.trainable_names(P, "lora"))
    P = {k: torch.nn.Parameter(v, requires_grad=k in train) for k, v in P.items()}
    trainable = [P[k] for k in P if k in train]
    n_trainable = sum(p.numel() for p in trainable)
    groups = [{"params": [P[k] for k in P if k in train and not cp.is_no_decay(k)], "weight_decay": a.weight_decay},
              {"params": [P[k] for k in P if k in train and cp.is_no_decay(k)], "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    opt = torch.optim.AdamW(groups, lr=a.lr, betas=(0.9, 0.999), eps=1e-8)

    # the epoch's batches: a seeded permutation, consecutive chunks (RandomSampler + BatchSampler)
    perm = torch.randperm(len(enc), generator=torch.Generator().manual_seed(a.seed)).tolist()
    batches = [perm[b:b + a.batch] for b in range(0, len(perm), a.batch)]
    total = len(batches)
    warmup = int(math.ceil(a.warmup_ratio * total))
    torch.manual_seed(a.seed)  # dropout

    losses, correct, seen, skipped = [], 0, 0, 0
    t0 = time.perf_counter()
    for step, idx in enumerate(batches):
        ids, mask, tt, labels = collate(enc, idx, pad_id)
        logits = cp.forward(P, cfg, ids, mask, tt, training=True)
        loss = F.cross_entropy(logits, labels)
        opt.zero_grad()
        lv = loss.item()
        ok = math.isfinite(lv)
        if ok:
            loss.backward()
            ok = math.isfinite(float(torch.nn.utils.clip_grad_norm_(trainable, a.max_grad_norm)))
        if not ok:
            opt.zero_grad()
            skipped += 1
            continue
        factor = (step + 1) / max(1, warmup) if step < warmup else max(0.0, (total - step) / max(1, total - warmup))
        for g in opt.param_groups:
            g["lr"] = a.lr * factor
        opt.step()
        losses.append(lv * len(idx))
        correct += int(logits.detach().argmax(-1).eq(labels).sum())
        seen += len(idx)
    seconds = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    out = {"impl": "pytorch", "epoch_seconds": seconds, "rows": len(enc), "steps": total, "warmup_steps": warmup,
           "samples_per_second": len(enc) / seconds, "peak_rss_mib": rss, "threads": torch.get_num_threads(),
           "trainable_params": n_trainable, "train_loss": sum(losses) / max(1, seen),
           "train_accuracy": correct / max(1, seen), "skipped_steps": skipped,
           "final_lr": opt.param_groups[0]["lr"],
           "padded_tokens_per_batch": padded_per_batch(batches, lengths),
           "real_tokens_per_batch": sum(lengths) / total, "truncated_rows": sum(truncated),
           "max_len": a.max_len, "batch": a.batch, "seed": a.seed, "lr": a.lr,
           "torch": torch.__version__, "blas_core": cp.blas_core(),
           "openblas_coretype_env": os.environ.get("OPENBLAS_CORETYPE", "(unset)"),
           "ld_preload": os.environ.get("LD_PRELOAD", "")}
    # lorakit's own epoch-1 batches (seed + 1), as make_batches cuts them, for its padding count
    if _mt_self_test():
        lb = lorakit_batches(lengths, a.batch, a.lorakit_seed + 1, group=not a.lorakit_no_group)
        out["lorakit_padded_tokens_per_batch"] = padded_per_batch(lb, lengths)
        out["lorakit_batching"] = "shuffled, no length grouping" if a.lorakit_no_group else "length-grouped"
    else:
        out["lorakit_padded_tokens_per_batch"] = None
        out["lorakit_batching"] = "length-grouped" if not a.lorakit_no_group else "shuffled, no length grouping"
        print("compare_pytorch_epoch.py: the mt19937_64 replica failed its self-test: lorakit's padding not counted",
              file=sys.stderr)
    print(json.dumps(out))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--tsv", required=True, help="GLUE MRPC train.tsv")
    common.add_argument("--rows", type=int, default=-1, help="the first N rows (<= 0: all)")
    t = sub.add_parser("texts", parents=[common])
    t.add_argument("--out", required=True)
    t.add_argument("--subset-tsv", default="")
    t.add_argument("--subset-rows", type=int, default=8)
    for name in ("verify", "train"):
        p = sub.add_parser(name, parents=[common])
        p.add_argument("--tokens", required=True, help="lorakit tokenize --no-special-tokens output for `texts`")
        p.add_argument("--max-len", type=int, default=128)
        p.add_argument("--model", required=True, help="the lorakit model directory (config.json, vocab.txt, model.safetensors)")
    v = sub.choices["verify"]
    v.add_argument("--logits", required=True, help="lorakit predict --logits output for the first --k rows")
    v.add_argument("--k", type=int, default=8)
    v.add_argument("--tol", type=float, default=1e-5)
    tr = sub.choices["train"]
    tr.add_argument("--batch", type=int, default=32)
    tr.add_argument("--threads", type=int, default=0, help="0: the cores this process may run on")
    tr.add_argument("--seed", type=int, default=42, help="permutation and dropout seed")
    tr.add_argument("--r", type=int, default=8)
    tr.add_argument("--lr", type=float, default=5e-4, help="lorakit train's default")
    tr.add_argument("--weight-decay", type=float, default=0.01)
    tr.add_argument("--warmup-ratio", type=float, default=0.06)
    tr.add_argument("--max-grad-norm", type=float, default=1.0)
    tr.add_argument("--dropout", type=float, default=0.1)
    tr.add_argument("--lorakit-seed", type=int, default=42, help="lorakit train --seed, for its batch count")
    tr.add_argument("--lorakit-no-group", action="store_true", help="lorakit ran with --no-group-by-length")
    a = ap.parse_args()
    if a.cmd in ("verify", "train") and a.max_len < 3:
        sys.exit("compare_pytorch_epoch.py: --max-len must hold the 3 special tokens of a pair")
    return {"texts": cmd_texts, "verify": cmd_verify, "train": cmd_train}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())

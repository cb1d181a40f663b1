#!/usr/bin/python3
"""PyTorch-eager counterpart of build/bench_step: one training step of a randomly initialised
BERT-shaped sequence classifier, timed the same way, so that bench/compare_pytorch can put the two
side by side.

Runs under Debian's /usr/bin/python3 (python3-torch 1.13, the same LibTorch lorakit links).

  /usr/bin/python3 bench/compare_pytorch.py --method lora --layers 4
  /usr/bin/python3 bench/compare_pytorch.py --method gr-lora --per-sample vmap
  /usr/bin/python3 bench/compare_pytorch.py --check-penalty --layers 1 --batch 4 --seq 16

The network is the plain-tensor BERT of tests/oracle/bert_ref.py (same op sequence: embeddings ->
LayerNorm, per layer Q/K/V, softmax attention, output dense + residual + LayerNorm, exact-erf GELU
FFN, pooler tanh, classifier), written here as a functional forward over a dict of nn.Parameters
(bert_ref.py keeps its forward inside main(), so it cannot be imported), plus what bench_step's
model has on top: dropout (hidden / attention / classifier 0.1, lorakit's ModelConfig defaults) and
the LoRA branches.

What one step does, as lorakit's StepRunner (src/train/trainer.cpp) does it for bench_step:
  forward -> per-sample cross entropy -> mean (+ GR-LoRA penalty) -> zero_grad -> backward ->
  clip_grad_norm_(trainable, 1.0) -> linear LR schedule (warmup 0, decay to 0 over warmup+steps) ->
  AdamW(lr 1e-4, betas 0.9/0.999, eps 1e-8, weight decay 0.01; biases and LayerNorm without decay).
Trainable set: lora / gr-lora: lora_A, lora_B on query and value (r 8, alpha 16, lora dropout 0,
A Kaiming-uniform a=sqrt(5), B zero) plus the classifier (modules_to_save); full: every parameter.

GR-LoRA (SPEC 3.1, src/tuners/gr_lora): an autograd function on every LoRA branch output h scales the
backward by c = min(1 / (||h||_F + 1e-6), 100); the penalty is
0.01 * (1/|S|) * sum_{i in S} sum_modules (||dL_i/dA||^2 + ||dL_i/dB||^2) over the correctly classified
samples S, with the scaling bypassed while the per-sample gradients are taken. Here it is written the
way a user of the paper would: --per-sample loop (default) takes one torch.autograd.grad(create_graph)
per correct sample; --per-sample vmap uses functorch (vmap(grad(...)) over the correct samples, which
re-runs their forward under vmap: its dropout masks differ from the main forward's).

Prints one JSON line.
"""
import argparse
import json
import math
import os
import resource
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    sys.exit("compare_pytorch.py: this python (%s) has no torch; run it with /usr/bin/python3 "
             "(Debian's python3-torch)" % sys.executable)


# ----------------------------------------------------------------------------------------------
# GR-LoRA inverse-norm gradient scaling
class _Bypass:
    on = 0  # > 0: the scaling's backward passes gradients through unscaled (penalty's true grads)


class GradScale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, scale, eps, max_scale):
        n = h.norm().item()
        d = n + eps
        ctx.c = max_scale if not d > 0 else min(scale / d, max_scale)
        return h.view_as(h)

    @staticmethod
    def backward(ctx, g):
        if _Bypass.on > 0:
            return g, None, None, None
        return g * ctx.c, None, None, None


# ----------------------------------------------------------------------------------------------
class Cfg:
    def __init__(self, a):
        self.layers, self.hidden, self.heads, self.inter = a.layers, a.hidden, a.heads, a.intermediate
        self.vocab, self.max_pos, self.type_vocab, self.labels = a.vocab, 512, 2, 2
        self.eps = 1e-12
        self.p_hidden = self.p_attn = self.p_cls = a.dropout
        self.r, self.alpha = a.r, 2.0 * a.r
        self.scaling = self.alpha / self.r
        self.targets = ("query", "value")
        self.pad = 0


def build_params(cfg, method):
    """name -> tensor (HF names, as lorakit names its parameters), randomly initialised as
    init_hf_weights + LoraLayer do: normal(0, 0.02) weights and embeddings (pad row zero), zero biases,
    LayerNorm 1/0, lora_A Kaiming-uniform(a=sqrt 5), lora_B zero."""
    H, I = cfg.hidden, cfg.inter
    P = {}

    def normal(*shape):
        return torch.empty(*shape).normal_(0.0, 0.02)

    def lin(name, d_in, d_out):
        P[name + ".weight"] = normal(d_out, d_in)
        P[name + ".bias"] = torch.zeros(d_out)

    def ln(name):
        P[name + ".weight"] = torch.ones(H)
        P[name + ".bias"] = torch.zeros(H)

    e = "bert.embeddings."
    P[e + "word_embeddings.weight"] = normal(cfg.vocab, H)
    P[e + "word_embeddings.weight"][cfg.pad].zero_()
    P[e + "position_embeddings.weight"] = normal(cfg.max_pos, H)
    P[e + "token_type_embeddings.weight"] = normal(cfg.type_vocab, H)
    ln(e + "LayerNorm")
    for i in range(cfg.layers):
        q = "bert.encoder.layer.%d." % i
        for n in ("query", "key", "value"):
            lin(q + "attention.self." + n, H, H)
        lin(q + "attention.output.dense", H, H)
        ln(q + "attention.output.LayerNorm")
        lin(q + "intermediate.dense", H, I)
        lin(q + "output.dense", I, H)
        ln(q + "output.LayerNorm")
    lin("bert.pooler.dense", H, H)
    lin("classifier", H, cfg.labels)
    if method in ("lora", "gr-lora"):
        for i in range(cfg.layers):
            for n in cfg.targets:
                m = "bert.encoder.layer.%d.attention.self.%s." % (i, n)
                A = torch.empty(cfg.r, H)
                torch.nn.init.kaiming_uniform_(A, a=math.sqrt(5))
                P[m + "lora_A.weight"] = A
                P[m + "lora_B.weight"] = torch.zeros(H, cfg.r)
    return P


def trainable_names(P, method):
    if method == "full":
        return list(P)
    return [k for k in P if ".lora_" in k or k.startswith("classifier.")]


def is_no_decay(name):
    return name.endswith(".bias") or "LayerNorm" in name or "layer_norm" in name or "layernorm" in name


def forward(P, cfg, ids, mask, tt, training, gr=None, under_vmap=False):
    """Logits [B, C]. gr: None (plain LoRA / full) or dict(scale, eps, max_scale, rec) — every LoRA
    branch output then goes through GradScale; rec (a list) collects the adapted modules' names."""
    B, T = ids.shape
    H, nh = cfg.hidden, cfg.heads
    hd = H // nh

    def drop(x, p):
        if p <= 0 or not training:
            return x
        if under_vmap:  # functorch 1.13 refuses F.dropout's in-place bernoulli_ under randomness="different"
            return x * (torch.rand_like(x) >= p).to(x.dtype) / (1.0 - p)
        return F.dropout(x, p, True)

    def ln(x, name):
        return F.layer_norm(x, (H,), P[name + ".weight"], P[name + ".bias"], cfg.eps)

    def lin(x, name):
        y = F.linear(x, P[name + ".weight"], P[name + ".bias"])
        a = P.get(name + ".lora_A.weight")
        if a is not None:
            h = F.linear(F.linear(x, a), P[name + ".lora_B.weight"]) * cfg.scaling
            if gr is not None:
                h = GradScale.apply(h, gr["scale"], gr["eps"], gr["max_scale"])
            y = y + h
        return y

    e = "bert.embeddings."
    pos = torch.arange(T).unsqueeze(0)
    x = F.embedding(ids, P[e + "word_embeddings.weight"], padding_idx=cfg.pad) \
        + F.embedding(tt, P[e + "token_type_embeddings.weight"]) + F.embedding(pos, P[e + "position_embeddings.weight"])
    h = drop(ln(x, e + "LayerNorm"), cfg.p_hidden)
    bias = (1.0 - mask.to(h.dtype))[:, None, None, :] * torch.finfo(h.dtype).min

    def heads(t):
        return t.view(B, T, nh, hd).transpose(1, 2)

    for i in range(cfg.layers):
        q = "bert.encoder.layer.%d." % i
        Q, K, V = (heads(lin(h, q + "attention.self." + n)) for n in ("query", "key", "value"))
        s = torch.matmul(Q, K.transpose(-1, -2)) / math.sqrt(hd) + bias
        a = torch.matmul(drop(torch.softmax(s, -1), cfg.p_attn), V)
        a = a.transpose(1, 2).reshape(B, T, H)
        h1 = ln(drop(lin(a, q + "attention.output.dense"), cfg.p_hidden) + h, q + "attention.output.LayerNorm")
        f = F.gelu(lin(h1, q + "intermediate.dense"))
        h = ln(drop(lin(f, q + "output.dense"), cfg.p_hidden) + h1, q + "output.LayerNorm")
    pooled = torch.tanh(lin(h[:, 0], "bert.pooler.dense"))
    return lin(drop(pooled, cfg.p_cls), "classifier")


# ----------------------------------------------------------------------------------------------
# GR-LoRA penalty sums: sum_{i in S} sum_modules (||grad_A L_i||^2 + ||grad_B L_i||^2)
def lora_names(P):
    return [k for k in P if ".lora_" in k]


def penalty_sum_loop(P, per_sample_loss, correct_idx):
    params = [P[k] for k in lora_names(P)]
    total = None
    for i in correct_idx.tolist():
        _Bypass.on += 1
        try:
            g = torch.autograd.grad(per_sample_loss[i], params, retain_graph=True, create_graph=True,
                                    allow_unused=True)
        finally:
            _Bypass.on -= 1
        for t in g:
            if t is None:
                continue
            term = t.square().sum()
            total = term if total is None else total + term
    return total if total is not None else per_sample_loss.new_zeros(())


_functorch = None


def functorch_or_none():
    global _functorch
    if _functorch is None:
        try:
            from functorch import grad as ft_grad, vmap as ft_vmap
            _functorch = (ft_grad, ft_vmap)
        except Exception as ex:  # noqa: BLE001
            _functorch = ex
    return None if isinstance(_functorch, Exception) else _functorch


def penalty_sum_vmap(P, cfg, batch, correct_idx, training):
    ft_grad, ft_vmap = functorch_or_none()
    names = lora_names(P)
    lora = {k: P[k] for k in names}
    rest = {k: v for k, v in P.items() if k not in lora}

    def loss_one(lp, ids, mask, tt, y):
        Q = dict(rest)
        Q.update(lp)
        logits = forward(Q, cfg, ids[None], mask[None], tt[None], training, gr=None, under_vmap=True)  # scaling bypassed: identity
        return F.cross_entropy(logits, y[None])

    ids, mask, tt, y = (t.index_select(0, correct_idx) for t in batch)
    per = ft_vmap(ft_grad(loss_one), in_dims=(None, 0, 0, 0, 0), randomness="different")(lora, ids, mask, tt, y)
    total = None
    for k in names:
        term = per[k].square().sum()
        total = term if total is None else total + term
    return total


# ----------------------------------------------------------------------------------------------
class Stepper:
    def __init__(self, a, cfg, method, total_steps):
        self.a, self.cfg, self.method = a, cfg, method
        torch.manual_seed(0)
        raw = build_params(cfg, method)
        train = set(trainable_names(raw, method))
        self.P = {k: torch.nn.Parameter(v, requires_grad=k in train) for k, v in raw.items()}
        self.trainable = [self.P[k] for k in self.P if k in train]
        self.trainable_count = sum(p.numel() for p in self.trainable)
        decay = [self.P[k] for k in self.P if k in train and not is_no_decay(k)]
        no_decay = [self.P[k] for k in self.P if k in train and is_no_decay(k)]
        groups = []
        if decay:
            groups.append({"params": decay, "weight_decay": a.weight_decay})
        if no_decay:
            groups.append({"params": no_decay, "weight_decay": 0.0})
        self.opt = torch.optim.AdamW(groups, lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
        self.total = total_steps
        self.step_no = 0
        self.correct_counts = []
        self.penalties = []
        self.losses = []

    def step(self, batch):
        a, cfg, P = self.a, self.cfg, self.P
        ids, mask, tt, labels = batch
        gr = dict(scale=1.0, eps=1e-6, max_scale=100.0) if self.method == "gr-lora" else None
        logits = forward(P, cfg, ids, mask, tt, training=True, gr=gr)
        per_sample = F.cross_entropy(logits, labels, reduction="none")
        loss = per_sample.mean()
        if self.method == "gr-lora" and a.reg != 0:
            if a.match_correct_fraction is not None:
                # work matching (bench/compare_pytorch): |S| = round(F * batch), the first samples
                idx = torch.arange(min(a.batch, int(round(a.match_correct_fraction * a.batch))))
            else:
                correct = logits.detach().argmax(-1).eq(labels)
                idx = correct.nonzero().squeeze(1)
            n_s = idx.numel()
            self.correct_counts.append(n_s)
            if n_s > 0:
                if a.per_sample == "vmap":
                    s = penalty_sum_vmap(P, cfg, batch, idx, training=True)
                else:
                    s = penalty_sum_loop(P, per_sample, idx)
                pen = s * (a.reg / n_s)
                self.penalties.append(pen.item())
                loss = loss + pen
        self.opt.zero_grad()
        lv = loss.item()
        self.losses.append(lv)
        ok = math.isfinite(lv)
        if ok:
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(self.trainable, 1.0)
            ok = math.isfinite(float(norm))
        if not ok:
            self.opt.zero_grad()
            self.step_no += 1
            return
        factor = max(0.0, (self.total - self.step_no) / max(1, self.total))  # warmup 0, linear decay
        for g in self.opt.param_groups:
            g["lr"] = a.lr * factor
        self.opt.step()
        self.step_no += 1


def blas_core():
    try:
        import ctypes
        lib = ctypes.CDLL(None)
        for name in ("openblas_get_corename",):
            f = getattr(lib, name, None)
            if f is None:
                lib = ctypes.CDLL("libblas.so.3")
                f = getattr(lib, name, None)
            if f is not None:
                f.restype = ctypes.c_char_p
                return f().decode()
    except Exception:  # noqa: BLE001
        pass
    return "n/a"


def make_batch(a):
    # bench_step's batch: manual_seed(1), ids in [1000, vocab), mask ones, token types zero, labels {0,1}.
    torch.manual_seed(1)
    ids = torch.randint(1000, a.vocab, (a.batch, a.seq), dtype=torch.long)
    mask = torch.ones(a.batch, a.seq, dtype=torch.long)
    tt = torch.zeros(a.batch, a.seq, dtype=torch.long)
    labels = torch.randint(0, 2, (a.batch,), dtype=torch.long)
    return ids, mask, tt, labels


def check_penalty(a):
    """Penalty sum, loop vs functorch vmap vs a plain double loop of per-sample forward passes, and the
    gradients of the penalty w.r.t. the trainable parameters; dropout off, float64."""
    torch.set_default_dtype(torch.float64)
    a.dropout = 0.0
    cfg = Cfg(a)
    st = Stepper(a, cfg, "gr-lora", 1)
    P = st.P
    with torch.no_grad():  # B = 0 at init makes dL/dA vanish; give B some weight
        for k in lora_names(P):
            if ".lora_B." in k:
                P[k].normal_(0.0, 0.02)
    batch = make_batch(a)
    ids, mask, tt, labels = batch
    gr = dict(scale=1.0, eps=1e-6, max_scale=100.0)
    idx = torch.arange(a.batch)  # every sample, so the check does not depend on |S|
    # with the scaling function on the branches (as the benchmark runs): value only — its gradient
    # carries the scaling's c on the path through the forward graph (as lorakit's does), vmap's does not
    per = F.cross_entropy(forward(P, cfg, ids, mask, tt, True, gr=gr), labels, reduction="none")
    s_scaled = float(penalty_sum_loop(P, per, idx))
    # without it: value and gradient must equal vmap's
    per = F.cross_entropy(forward(P, cfg, ids, mask, tt, True, gr=None), labels, reduction="none")
    s_loop = penalty_sum_loop(P, per, idx)
    g_loop = torch.autograd.grad(s_loop, st.trainable, retain_graph=True, allow_unused=True)
    # reference: separate forward per sample (no scaling function at all), first-order grads
    s_ref = 0.0
    names = lora_names(P)
    for i in range(a.batch):
        li = F.cross_entropy(forward(P, cfg, ids[i:i + 1], mask[i:i + 1], tt[i:i + 1], True), labels[i:i + 1])
        g = torch.autograd.grad(li, [P[k] for k in names])
        s_ref += sum(float(t.square().sum()) for t in g)
    out = {"check": "gr-lora penalty", "loop": float(s_loop), "loop_with_scaling_fn": s_scaled,
           "per_sample_forward_ref": s_ref,
           "rel_loop_vs_ref": max(abs(float(s_loop) - s_ref), abs(s_scaled - s_ref)) / abs(s_ref)}
    if functorch_or_none() is None:
        out["vmap"] = "functorch not importable: %r" % (_functorch,)
    else:
        try:
            s_vmap = penalty_sum_vmap(P, cfg, batch, idx, True)
            g_vmap = torch.autograd.grad(s_vmap, st.trainable, allow_unused=True)
            out["vmap"] = float(s_vmap)
            out["rel_loop_vs_vmap"] = abs(float(s_loop) - float(s_vmap)) / abs(float(s_vmap))
            worst = 0.0
            for x, y in zip(g_loop, g_vmap):
                if x is None and y is None:
                    continue
                x = torch.zeros_like(y) if x is None else x
                y = torch.zeros_like(x) if y is None else y
                worst = max(worst, float((x - y).abs().max() / (y.abs().max() + 1e-300)))
            out["grad_rel_maxdiff_loop_vs_vmap"] = worst
        except Exception as ex:  # noqa: BLE001
            out["vmap"] = "failed: %s: %s" % (type(ex).__name__, ex)
    print(json.dumps(out))
    ok = out["rel_loop_vs_ref"] < 1e-8 and (not isinstance(out["vmap"], float) or
                                             (out["rel_loop_vs_vmap"] < 1e-8 and out["grad_rel_maxdiff_loop_vs_vmap"] < 1e-6))
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--method", default="lora", choices=["lora", "full", "gr-lora"])
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--intermediate", type=int, default=3072)
    ap.add_argument("--vocab", type=int, default=30522)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--r", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="0: the cores this process may run on")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--dropout", type=float, default=0.1, help="hidden / attention / classifier dropout")
    ap.add_argument("--reg", type=float, default=0.01, help="gr-lora lambda_reg")
    ap.add_argument("--per-sample", default="loop", choices=["loop", "vmap"], help="gr-lora penalty's per-sample grads")
    ap.add_argument("--match-correct-fraction", type=float, default=None, metavar="F",
                    help="gr-lora, for timing only: penalise the first round(F*batch) samples instead of the "
                         "correctly classified ones (random models of the two sides predict differently; "
                         "the penalty's cost is proportional to |S|)")
    ap.add_argument("--check-penalty", action="store_true", help="check the gr-lora penalty (loop vs vmap vs reference) and exit")
    a = ap.parse_args()
    threads = a.threads if a.threads > 0 else len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    if a.check_penalty:
        return check_penalty(a)
    if a.method == "gr-lora" and a.per_sample == "vmap" and functorch_or_none() is None:
        print(json.dumps({"impl": "pytorch", "method": a.method, "skipped": "functorch not importable: %r" % (_functorch,)}))
        print("compare_pytorch.py: --per-sample vmap skipped: functorch is not importable (%r)" % (_functorch,),
              file=sys.stderr)
        return 3
    cfg = Cfg(a)
    total = a.warmup + a.steps
    st = Stepper(a, cfg, a.method, total)
    batch = make_batch(a)
    ms = []
    try:
        for i in range(total):
            t0 = time.perf_counter()
            st.step(batch)
            t = (time.perf_counter() - t0) * 1e3
            if i >= a.warmup:
                ms.append(t)
    except (RuntimeError, MemoryError) as ex:
        what = "out of memory" if isinstance(ex, MemoryError) or "alloc" in str(ex).lower() else "failed"
        print(json.dumps({"impl": "pytorch", "method": a.method, "per_sample": a.per_sample,
                          "skipped": "%s: %s" % (what, str(ex).splitlines()[0] if str(ex) else type(ex).__name__)}))
        print("compare_pytorch.py: %s --per-sample %s %s: %s" % (a.method, a.per_sample, what, ex), file=sys.stderr)
        return 3
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    out = {"impl": "pytorch", "method": a.method,
           "step_ms_mean": sum(ms) / len(ms) if ms else float("nan"),
           "step_ms_min": min(ms) if ms else float("nan"),
           "peak_rss_mib": rss, "threads": torch.get_num_threads(),
           "trainable_params": st.trainable_count,
           "shape": {"layers": a.layers, "hidden": a.hidden, "heads": a.heads, "intermediate": a.intermediate,
                     "vocab": a.vocab, "batch": a.batch, "seq": a.seq, "r": a.r},
           "steps": a.steps, "warmup": a.warmup, "dropout": a.dropout,
           "losses": st.losses, "torch": torch.__version__, "blas_core": blas_core(),
           "openblas_coretype_env": os.environ.get("OPENBLAS_CORETYPE", "(unset)"),
           "ld_preload": os.environ.get("LD_PRELOAD", "")}
    if a.method == "gr-lora":
        out["per_sample"] = a.per_sample
        out["match_correct_fraction"] = a.match_correct_fraction
        out["correct_fraction"] = (sum(st.correct_counts) / (len(st.correct_counts) * a.batch)
                                   if st.correct_counts else None)
        out["penalties"] = st.penalties
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

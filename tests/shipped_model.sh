#!/usr/bin/env bash
# The shipped fingernail model (models/README.md): predict with no --weights finds it and says so,
# $UNETSRNN_MODELS takes precedence, and the model segments the shared photos sensibly. Needs the
# fingernail data (../shared/data/fingernails beside the source tree, or $FINGERNAILS); without it
# the test reports itself skipped (exit 77).
#   shipped_model.sh <folder of predict and evaluate> <source tree>
set -euo pipefail
bin=$1
src=$2
data=${FINGERNAILS:-$src/../shared/data/fingernails}
weights=$src/models/crunet_res_lw-fingernails.weights
fail() { echo "FAIL: $*" >&2; exit 1; }
[ -f "$weights" ] || fail "the shipped model $weights is missing"
if [ ! -d "$data/dataset1/image" ] || [ ! -d "$data/dataset2/image" ]; then
  echo "SKIPPED: no fingernail data at $data (set FINGERNAILS)"
  exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# sed reads its whole input: `head` would close the pipe early, and under pipefail the writer's
# SIGPIPE would end the script without a word (seen as a 0.01 s failure).
photo=$(find "$data/dataset2/image" -type f | sort | sed -n 1p)
name=$(basename "$photo")
"$bin/predict" --input "$photo" --out "$tmp/out" >"$tmp/stdout" 2>"$tmp/stderr" ||
  fail "predict with no --weights exited $?: $(cat "$tmp/stderr")"
grep -q "no --weights given: using the shipped model .*crunet_res_lw-fingernails.weights" \
  "$tmp/stderr" || fail "predict did not say it used the shipped model: $(cat "$tmp/stderr")"
[ -s "$tmp/out/${name}_mask.png" ] && [ -s "$tmp/out/${name}_overlay.png" ] ||
  fail "predict wrote no mask and overlay for $name"
# A nail photo: some foreground, far from all of it.
fg=$(sed -n 's/.*, \([0-9.]*\)% foreground.*/\1/p' "$tmp/stdout")
awk -v f="$fg" 'BEGIN { exit !(f > 0.5 && f < 60) }' ||
  fail "implausible foreground share '$fg%' for $name"
echo "predict, shipped model: $name, $fg% foreground"

# $UNETSRNN_MODELS first.
mkdir -p "$tmp/models"
cp "$weights" "$tmp/models/"
UNETSRNN_MODELS=$tmp/models "$bin/predict" --input "$photo" --out "$tmp/out2" >/dev/null \
  2>"$tmp/stderr2" || fail "predict with UNETSRNN_MODELS exited $?"
grep -q "using the shipped model $tmp/models/" "$tmp/stderr2" ||
  fail "UNETSRNN_MODELS was not searched first: $(cat "$tmp/stderr2")"

# Quality on the shared pairs (the model trained on them: this checks that the file is the
# trained model, not its generalisation, which models/README.md states from cross-validation).
for pair in "dataset1 0.85" "dataset2 0.60"; do
  set -- $pair
  dice=$("$bin/evaluate" --weights "$weights" --data "$data/$1" 2>/dev/null |
         sed -n 's/.*"dice": \([0-9.]*\),.*/\1/p' | sed -n 1p)
  awk -v d="$dice" -v m="$2" 'BEGIN { exit !(d >= m) }' ||
    fail "shipped model's Dice on $1 is '$dice', below $2"
  echo "evaluate, shipped model: $1 Dice $dice (>= $2)"
done
echo "shipped model: all checks passed"

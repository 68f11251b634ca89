#!/usr/bin/env bash
# The differential harnesses (layers, keys, certificates) for longer than the test suite runs it: rounds of
# generated and mutated layers (2000 inputs per property per round, a new random seed
# each round) until MINUTES (default 30) have passed. Prints one line per round and a
# total; stops at the first disagreement, whose blob pytest prints. Needs what
# tests/run.sh builds first: the examples layer_files, key_info and chain_check under
# target/release/examples, target/gotar and the
# target/formats-venv venv.
set -euo pipefail
cd "$(dirname "$0")"
minutes=${1:-30}
per_round=${PER_ROUND:-2000}
python=../../target/formats-venv/bin/python
rounds=0
inputs=0
end=$((SECONDS + minutes * 60))
while [ $SECONDS -lt $end ]; do
  seed=$RANDOM$RANDOM
  MODELSEAL_FORMATS_EXAMPLES=$per_round "$python" -m pytest -q -x -k "generated or mutated" \
    --hypothesis-seed="$seed" . > "../../target/formats-round.log" 2>&1 || {
      cat ../../target/formats-round.log
      echo "disagreement in round $((rounds + 1)) (seed $seed) after $inputs inputs"
      exit 1
    }
  rounds=$((rounds + 1))
  properties=$(tail -1 ../../target/formats-round.log | grep -oE '^[0-9]+ passed' | cut -d' ' -f1)
  inputs=$((inputs + per_round * ${properties:-0}))
  echo "round $rounds (seed $seed): $(tail -1 ../../target/formats-round.log)"
done
echo "no disagreement in $rounds rounds, $inputs generated inputs, $minutes minutes"

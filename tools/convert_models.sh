#!/usr/bin/env bash
# Writes the native (.remodule) copy of every bundled model with the engine's
# own converter: models/native/<stem>.remodule. Run after training.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin remodule
for f in $(python3 -c "import json; print(' '.join(m['file'] for m in json.load(open('models/catalog.json'))['models']))"); do
  target/release/remodule convert "models/$f" --out "models/native/${f%.*}.remodule"
done

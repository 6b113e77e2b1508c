# Shared by scripts/serve and scripts/test: idempotent set-up and the wasm build.
# Each step checks first and installs only what is missing, so a second run is quick.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WASM_BINDGEN_VERSION=0.2.130
# A RUSTFLAGS variable would silently replace .cargo/config.toml's +simd128.
unset RUSTFLAGS
export PATH="$HOME/.cargo/bin:$PATH"
# The wasm32 builds have their own target directory, so that a native build (serve, bench) never
# waits on the lock of a wasm one.
WASM_TARGET_DIR="$ROOT/target/wasm"
wasm_cargo() { CARGO_TARGET_DIR="$WASM_TARGET_DIR" cargo "$@"; }

# step NAME: prints a heading and starts timing the step (step_summary prints the times).
STEP_NAMES=()
STEP_SECONDS=()
step_started=$SECONDS
step() {
  step_end
  STEP_NAMES+=("$*")
  step_started=$SECONDS
  printf '\n\033[1m== %s\033[0m\n' "$*"
}
# Closes the step under way (its wall time goes into the summary).
step_end() {
  if [ ${#STEP_NAMES[@]} -gt ${#STEP_SECONDS[@]} ]; then STEP_SECONDS+=($((SECONDS - step_started))); fi
}
# Prints the wall time of every step so far, and the total.
step_summary() {
  step_end
  local i total=0
  printf '\n%6s  %s\n' "wall" "step"
  for i in "${!STEP_NAMES[@]}"; do
    printf '%5ds  %s\n' "${STEP_SECONDS[$i]}" "${STEP_NAMES[$i]}"
    total=$((total + STEP_SECONDS[i]))
  done
  printf '%5ds  %s\n' "$total" "total"
}
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

ensure_wasm_toolchain() {
  for c in rustfmt clippy; do
    rustup component list --installed | grep -q "^$c" || rustup component add "$c"
  done
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    step "installing the wasm32 target"
    rustup target add wasm32-unknown-unknown
  fi
  if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ]; then
    step "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (about 4 minutes, once)"
    # No --locked: its lock file pins a crate version this registry mirror lacks.
    cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
  fi
}

ensure_browser() {
  local missing=()
  command -v chromium >/dev/null || missing+=(chromium)
  command -v chromedriver >/dev/null || missing+=(chromium-driver)
  command -v wasm-objdump >/dev/null || missing+=(wabt)
  if [ ${#missing[@]} -gt 0 ]; then
    step "installing ${missing[*]} from Debian"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

ensure_npm() {
  local dir="$ROOT/tests/e2e"
  if [ ! -d "$dir/node_modules/playwright-core" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    step "installing npm packages for the page tests"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

# Builds the wasm engine into www/pkg and copies the bundled models and data
# into www/bundled (both git-ignored) so www/ alone is the static site.
build_site() {
  step "building the wasm engine (release, simd128)"
  wasm_cargo build --lib --release --target wasm32-unknown-unknown
  local wasm="$WASM_TARGET_DIR/wasm32-unknown-unknown/release/remodule.wasm"
  if [ ! -f www/pkg/remodule_bg.wasm ] || [ "$wasm" -nt www/pkg/remodule_bg.wasm ]; then
    wasm_bindgen_site "$wasm" www/pkg
  fi
  mkdir -p www/bundled
  # Only what the catalog names (models/resnet20.keras is the CLI's, not the page's).
  local f
  for f in models/catalog.json $(python3 -c 'import json; c = json.load(open("models/catalog.json")); print(" ".join(["models/" + m["file"] for m in c["models"]] + ["data/" + d["file"] for d in c["datasets"].values()]))'); do
    cp -u "$f" www/bundled/
  done
  write_build_manifest www
}

# The page's copy leaves out the function-name section (~180 KB raw, ~55 KB gzip of the first
# visit): panics keep their messages (console_error_panic_hook), only stack frames lose names.
wasm_bindgen_site() {
  wasm-bindgen --target web --no-typescript --remove-name-section --remove-producers-section --out-dir "$2" "$1"
}

# Writes DIR/build.js: the build's version (a digest of every file the page can use) and each
# file's SHA-256. The service worker (www/sw.js) caches exactly these files under that version,
# so a page is only ever served with the engine and data of its own build; a changed build.js is
# how the browser learns of a new build. Benchmark-only files (bench*, pkg-scalar/, ort/,
# bundled/onnx/) are left out.
write_build_manifest() {
  local dir="$1"
  (
    cd "$dir"
    local sums version
    sums=$(find . -type f ! -name 'build.js*' ! -name sw.js ! -name 'bench*' ! -path './pkg-scalar/*' \
      ! -path './ort/*' ! -path './bundled/onnx/*' -printf '%P\n' | LC_ALL=C sort | xargs -d '\n' sha256sum)
    # sw.js is not cached (the browser fetches it to look for updates) but is part of the version.
    version=$( (printf '%s\n' "$sums"; sha256sum sw.js) | sha256sum | cut -c1-16)
    {
      echo "// Written by build_site (scripts/lib.sh); git-ignored. Read by sw.js and offline.js."
      echo "self.REMODULE_BUILD = {"
      echo "  version: '$version',"
      echo "  files: {"
      printf '%s\n' "$sums" | awk '{ printf "    \"%s\": \"%s\",\n", $2, $1 }'
      echo "  },"
      echo "};"
    } > build.js.tmp
    mv build.js.tmp build.js
  )
}

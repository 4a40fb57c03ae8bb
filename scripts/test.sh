#!/usr/bin/env bash
# Every check of the repository, in the order CI runs them (`.ci/run` calls exactly this).
#
# Needs: a Debian-like machine with Rust installed through rustup. Whatever else a check needs
# is installed first (see "Prerequisites"): add `need_component` / `need_apt` lines there.
#
# Environment:
#   LOOM_MAX_PREEMPTIONS  preemption bound of the loom models (default 3)
#   FUZZ_SECONDS          how long each fuzz target runs (default 30)
#   CARGO_TARGET_DIR      the normal build's target dir (default target/); the loom build,
#                         compiled with a different cfg, goes to its `loom/` subdirectory so the
#                         two never invalidate each other
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

START=$SECONDS
STEP_START=
# Prints a header for the next step (and how long the previous one took).
step() {
    [[ -n $STEP_START ]] && printf '    (%ds)\n' $((SECONDS - STEP_START))
    STEP_START=$SECONDS
    printf '\n==> %s\n' "$*"
}

# A rustup component of the active toolchain, unless the cargo subcommand already works.
need_component() {
    local component=$1 subcommand=$2
    if ! cargo "$subcommand" --version >/dev/null 2>&1; then
        echo "installing the $component component"
        rustup component add "$component"
    fi
}

# Debian packages; `apt-get update` runs at most once, and only if something is missing.
APT_UPDATED=
need_apt() {
    local missing=()
    local pkg
    for pkg in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$pkg")
        fi
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    local sudo=
    [[ $(id -u) -ne 0 ]] && sudo=sudo
    if [[ -z $APT_UPDATED ]]; then
        $sudo apt-get update -q
        APT_UPDATED=1
    fi
    echo "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
}

step "Prerequisites"
command -v cargo >/dev/null || { echo "cargo not found: install Rust with rustup" >&2; exit 1; }
need_component rustfmt fmt
need_component clippy clippy
# The Redis backend's tests (tests/redis*.rs) start their own redis-server.
need_apt redis-server
# redis-cli and redis-benchmark against `nanolimit serve` (scripts/serve-clients.sh).
need_apt redis-tools curl
cargo --version
rustc --version

step "Format: cargo fmt --all -- --check"
cargo fmt --all -- --check

step "Lint: cargo clippy --workspace --all-targets --all-features -- -D warnings"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "Tests: cargo test --workspace --all-features"
cargo test --workspace --all-features

step "Real clients against nanolimit serve: scripts/serve-clients.sh (redis-cli, redis-benchmark, curl)"
bash scripts/serve-clients.sh

step "Benches compile: cargo bench --workspace --no-run"
cargo bench --workspace --no-run

# Twice: intra-doc links must resolve with the features a build happens to enable and with all.
step "Docs: cargo doc --workspace --no-deps, default and all features (RUSTDOCFLAGS=-D warnings)"
RUSTDOCFLAGS="${RUSTDOCFLAGS:-} -D warnings" cargo doc --workspace --no-deps
RUSTDOCFLAGS="${RUSTDOCFLAGS:-} -D warnings" cargo doc --workspace --no-deps --all-features

# The fuzz targets are their own workspace (cargo-fuzz); here they are only compiled and linted
# on stable, so they cannot rot. Running them: see docs/testing.md.
step "Fuzz targets compile: cargo clippy --manifest-path fuzz/Cargo.toml"
cargo clippy --manifest-path fuzz/Cargo.toml --all-targets -- -D warnings

# Every target runs briefly from its committed seeds (new inputs go to a scratch corpus, so the
# seeds stay as written); a crash fails the run and leaves its input in fuzz/artifacts/.
FUZZ_SECONDS="${FUZZ_SECONDS:-30}"
step "Fuzz: every target for ${FUZZ_SECONDS}s (cargo fuzz, RUSTC_BOOTSTRAP=1)"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install --locked cargo-fuzz
fi
(
    cd fuzz
    export RUSTC_BOOTSTRAP=1
    cargo fuzz build
    for target in $(cargo fuzz list); do
        corpus="$(mktemp -d)"
        seeds=()
        [[ -d seeds/$target ]] && seeds=("seeds/$target")
        echo "--- $target"
        status=0
        cargo fuzz run "$target" "$corpus" "${seeds[@]}" -- \
            -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 >"$corpus.log" 2>&1 || status=$?
        grep -E '^(Done|stat::number_of_executed_units)' "$corpus.log" || true
        if [[ $status -ne 0 ]]; then
            tail -n 60 "$corpus.log"
            echo "fuzz target $target failed" >&2
            exit 1
        fi
        rm -rf "$corpus" "$corpus.log"
    done
)

# The loom models: only tests/loom*.rs, because under this cfg the crate's atomics are loom's,
# which panic outside `loom::model` (every other test would fail).
loom_tests=()
for file in tests/loom*.rs; do
    [[ -e $file ]] || continue
    loom_tests+=(--test "$(basename "$file" .rs)")
done
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}"
step "Loom models (LOOM_MAX_PREEMPTIONS=$LOOM_MAX_PREEMPTIONS, release): ${loom_tests[*]:-none}"
if [[ ${#loom_tests[@]} -gt 0 ]]; then
    (
        export RUSTFLAGS="${RUSTFLAGS:-} --cfg nanolimit_loom"
        export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/loom"
        # The models are compiled out of the lint step above; lint them under their cfg.
        cargo clippy -p nanolimit "${loom_tests[@]}" -- -D warnings
        cargo test --release -p nanolimit "${loom_tests[@]}"
    )
fi

step "Done"
printf 'all checks passed in %dm%02ds\n' $(((SECONDS - START) / 60)) $(((SECONDS - START) % 60))

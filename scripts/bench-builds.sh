# Sourced by scripts/bench.sh: the binaries it times. This checkout's
# release build (or the binaries in --bin DIR) becomes $bin, first on PATH;
# the baseline becomes $base: the directory --baseline names, or for
# --against REV the binaries of REV, built once per commit in a worktree
# under $ETLKIT_BENCH_CACHE with a target dir of their own and kept in
# $ETLKIT_BENCH_CACHE/bin/COMMIT. Reads $root, $cur_bin, $against, $baseline.
# shellcheck shell=bash
# shellcheck disable=SC2154,SC2034 # options in, variables out: scripts/bench.sh

programs=(etl-extract etl-transform etl-load etl-watch)
# has_programs DIR [EXTRA...]: DIR holds the four programs (and EXTRA).
has_programs() {
  local d=$1 p
  shift
  for p in "${programs[@]}" "$@"; do [ -x "$d/$p" ] || return 1; done
}
if [ -n "$cur_bin" ]; then
  bin=$(cd "$cur_bin" && pwd)
else
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/etlkit/target}"
  echo "building release binaries..." >&2
  (cd "$root" && cargo build --release --locked --quiet --bins --example gen-orders --example wire-parse)
  bin=$(cd "$root" && cd "$CARGO_TARGET_DIR/release" && pwd)
fi
if ! has_programs "$bin" examples/gen-orders; then
  echo "bench: $bin lacks one of ${programs[*]} examples/gen-orders" >&2; exit 2
fi
export PATH="$bin:$PATH"

# The baseline: a directory of etl-* binaries, given or built from a
# revision. Its runs put it first on PATH.
base=""
base_name=""
if [ -n "$against" ]; then
  if ! sha=$(git -C "$root" rev-parse --verify --quiet "$against^{commit}"); then
    echo "bench: --against $against: no such commit in $root" >&2; exit 2
  fi
  cache=${ETLKIT_BENCH_CACHE:-$HOME/.cache/etlkit/bench-against}
  mkdir -p "$cache"
  cache=$(cd "$cache" && pwd)
  base="$cache/bin/$sha"
  base_name="$against (${sha:0:12})"
  if ! has_programs "$base"; then
    src="$cache/src-$sha"
    echo "building $against (${sha:0:12}) in $src, target dir $cache/target..." >&2
    # a worktree left by a build that failed goes first (--force: also when
    # its folder was removed by hand and only its registration is left)
    git -C "$root" worktree remove --force "$src" 2>/dev/null || rm -rf "$src"
    git -C "$root" worktree add --quiet --force --detach "$src" "$sha"
    examples=()
    if [ -f "$src/examples/wire-parse.rs" ]; then examples=(--example wire-parse); fi
    (cd "$src" && CARGO_TARGET_DIR="$cache/target" cargo build --release --locked --quiet --bins "${examples[@]}")
    rm -rf "$base.part"
    mkdir -p "$base.part/examples"
    for p in "${programs[@]}"; do cp "$cache/target/release/$p" "$base.part/"; done
    if [ ${#examples[@]} -gt 0 ]; then cp "$cache/target/release/examples/wire-parse" "$base.part/examples/"; fi
    mv "$base.part" "$base"
    git -C "$root" worktree remove --force "$src"
  fi
elif [ -n "$baseline" ]; then
  base=$(cd "$baseline" && pwd)
  base_name=$base
fi
if [ -n "$base" ] && ! has_programs "$base"; then
  echo "bench: the baseline $base lacks one of ${programs[*]}" >&2; exit 2
fi

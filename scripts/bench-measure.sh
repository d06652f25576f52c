# Sourced by scripts/bench.sh: how a scenario is timed, checked and put in
# a table. With a baseline ($base, a directory of etl-* binaries), bench_etl
# times it in the same run as the current binaries, the two alternating, and
# adds a row to the baseline table. Reads $runs, $base, $base_name,
# $tolerance and $gnu_time; appends to results, notes and compared.
# shellcheck shell=bash
# shellcheck disable=SC2154 # the options are parsed by scripts/bench.sh

# median SECONDS... -> the median
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# timed CMD [PATH [strict]]: runs CMD once (via bash -c, with PATH when
# given), echoes wall seconds; peak RSS (KB) of the largest process goes to
# $dir/rss. With strict, a failing CMD fails timed (an etlkit run must
# succeed; a peer's exit status is its own business).
timed() {
  local start end status=0
  rm -f rss.*
  start=$(date +%s.%N)
  PATH=${2:-$PATH} bash -o pipefail -c "$1" || status=$?
  end=$(date +%s.%N)
  if [ "$status" != 0 ] && [ "${3:-}" = strict ]; then
    echo "bench: exit status $status from: $1" >&2
    return 1
  fi
  if [ -n "$gnu_time" ]; then cat rss.* 2>/dev/null | sort -n | tail -n 1 > rss; fi
  # A reference run without a measured stage has no figure: 0.
  [ -s rss ] || echo 0 > rss
  printf '%.3f\n' "$(echo "$end - $start" | bc -l)"
}

# T NAME: prefix for measuring a pipeline stage's peak memory.
T() { if [ -n "$gnu_time" ]; then echo "$gnu_time -f %M -o rss.$1"; fi; }

# measure LABEL PREP CMD SIDES [strict]: runs PREP, then times CMD, $runs
# times for each side in SIDES ("cur", or "cur base"); the side that goes first swaps
# every round. Side base runs with the baseline's programs first on PATH and
# reads {b} in PREP and CMD as "_b", so that its outputs have names of their
# own; side cur reads {b} as nothing. Medians (seconds, to the millisecond)
# in cur_time and base_time, max RSS MB in cur_rss and base_rss; cur_time to
# two decimals in last_time, cur_rss in last_rss.
measure() {
  local label=$1 prep=$2 cmd=$3 sides=$4 strict=${5:-} order side sfx path t r i
  local cur_times=() base_times=() cur_max=0 base_max=0
  for i in $(seq "$runs"); do
    order=$sides
    if [ "$sides" = "cur base" ] && [ $(( i % 2 )) = 0 ]; then order="base cur"; fi
    for side in $order; do
      sfx="" path=$PATH
      if [ "$side" = base ]; then sfx=_b path="$base:$PATH"; fi
      PATH=$path bash -c "${prep//"{b}"/$sfx}"
      t=$(timed "${cmd//"{b}"/$sfx}" "$path" "$strict")
      r=$(cat rss)
      if [ "$side" = base ]; then
        base_times+=("$t")
        if [ "$r" -gt "$base_max" ]; then base_max=$r; fi
      else
        cur_times+=("$t")
        if [ "$r" -gt "$cur_max" ]; then cur_max=$r; fi
      fi
    done
  done
  cur_time=$(median "${cur_times[@]}")
  cur_rss=$(( cur_max / 1024 ))
  last_time=$(printf '%.2f' "$cur_time")
  last_rss=$cur_rss
  echo "  $label: ${last_time}s, ${last_rss} MB" >&2
  if [ ${#base_times[@]} -gt 0 ]; then
    base_time=$(median "${base_times[@]}")
    base_rss=$(( base_max / 1024 ))
    echo "  $label, baseline: $(printf '%.2f' "$base_time")s, ${base_rss} MB" >&2
  fi
}

# bench LABEL PREP CMD: a peer (or etlkit alone), timed $runs times.
bench() { measure "$1" "$2" "$3" cur; }

compared=()
slower=0
# compare TITLE CUR_SECONDS BASE_SECONDS CUR_CELL BASE_CELL: a row of the
# baseline table; flagged when CUR is more than $tolerance percent above BASE.
compare() {
  local ratio flag=""
  ratio=$(awk -v c="$2" -v b="$3" 'BEGIN { if (b > 0) printf "%.2fx", c / b; else print "–" }')
  if awk -v c="$2" -v b="$3" -v p="$tolerance" 'BEGIN { exit !(b > 0 && c > b * (1 + p / 100)) }'; then
    flag="slower by $(awk -v c="$2" -v b="$3" 'BEGIN { printf "%.1f", (c / b - 1) * 100 }')%"
    slower=$(( slower + 1 ))
  fi
  compared+=("| $1 | $4 | $5 | $ratio | $flag |")
}

# bench_etl TITLE LABEL PREP CMD: times etlkit; with a baseline, the
# baseline too, alternating, and adds the row TITLE to the baseline table.
# In PREP and CMD, {b} marks the names of outputs (files, tables, stream
# keys): nothing for this build, "_b" for the baseline's.
bench_etl() {
  if [ -z "$base" ]; then
    measure "$2" "$3" "$4" cur strict
    return
  fi
  measure "$2" "$3" "$4" "cur base" strict
  compare "$1" "$cur_time" "$base_time" "${cur_time}s (${cur_rss} MB)" "${base_time}s (${base_rss} MB)"
}

# same_records WHAT FILE_A FILE_B: a note when two outputs hold different
# records (the control lines aside) although their counts and sums agree.
same_records() {
  if ! cmp -s <(grep -v '^{"@etl' "$2") <(grep -v '^{"@etl' "$3"); then
    notes+=("baseline: $1: the same count, but records that differ from etlkit's.")
  fi
}

check() { # check WHAT EXPECTED ACTUAL
  if [ "$2" != "$3" ]; then
    echo "bench: $1 gave a wrong result: expected $2, got $3" >&2
    exit 1
  fi
}

row() { results+=("| $1 | $2 | $3 | $4 | $5 |"); }
ratio() { echo "scale=2; $1 / $2" | bc -l | sed 's/^\./0./'; }

# baseline_table: the rows compared with the baseline, and how many are
# more than $tolerance percent slower.
baseline_table() {
  echo
  echo "etlkit against the baseline $base_name ($(PATH="$base:$PATH" etl-load --version)):"
  echo "median seconds (peak MB) of $runs runs each, the two alternating"
  echo
  echo "| scenario | etlkit | baseline | etlkit/baseline | more than ${tolerance}% slower |"
  echo "| --- | --- | --- | --- | --- |"
  printf '%s\n' "${compared[@]}"
  echo
  echo "$slower of the timed rows more than ${tolerance}% slower than the baseline."
}

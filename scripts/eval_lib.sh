# shellcheck shell=bash
# What the scripts that run `nanodiff eval` over several settings share (quality.sh, samplers.sh,
# guidance_sweep.sh source it from the repository root):
#   eval_json OUT NAME FLAGS...  runs `nanodiff eval FLAGS --json OUT/NAME.json`: its table into OUT/NAME.txt,
#                                its stderr (progress line, notes) into OUT/NAME.log; on a failure shows the
#                                log's end and returns eval's status
#   eval_field NAME FILE.json    a top-level value of eval's JSON (strings without their quotes)
# NANODIFF names the program (default build/nanodiff).
nanodiff=${NANODIFF:-build/nanodiff}

eval_json() {
    local out=$1 name=$2
    shift 2
    local status=0
    "$nanodiff" eval "$@" --json "$out/$name.json" > "$out/$name.txt" 2> "$out/$name.log" || status=$?
    if [ "$status" -ne 0 ]; then
        echo "nanodiff eval $* failed ($status); the end of $out/$name.log:" >&2
        tail -n 5 "$out/$name.log" >&2
    fi
    return "$status"
}

# eval writes one "key": value pair a line at the top level (the per-class entries are indented further)
eval_field() { grep -E "^  \"$1\": " "$2" | sed -E 's/^  "[a-z_]+": //; s/,$//; s/^"(.*)"$/\1/'; }

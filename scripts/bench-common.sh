# Helpers the benchmark scripts share (sourced, not run).
# now: seconds since the epoch, nanosecond resolution.
now() { date +%s.%N; }
# timed CMD...: runs CMD (its output discarded) and prints its wall seconds.
timed() { local t0; t0=$(now); "$@" > /dev/null 2>&1; echo "$(now) - $t0" | bc; }
# median: of the numbers on stdin, one per line.
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

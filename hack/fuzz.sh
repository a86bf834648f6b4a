#!/usr/bin/env bash
# Runs every fuzz target of the module (every `func FuzzX(f *testing.F)` in
# a _test.go file, found afresh each run) for FUZZTIME each, one at a time.
# A crash stops the run; Go writes its input under the package's
# testdata/fuzz/FuzzX/, where `go test` replays it from then on: commit it
# with the fix, as the regression test.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-5m}
GO=${GO:-go}
mapfile -t targets < <(grep -rl --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' . \
	| grep -v '^./hack/tools/' | sort | while read -r file; do
		pkg=./$(dirname "${file#./}")
		grep -oE '^func Fuzz[A-Za-z0-9_]*' "$file" | sed "s|^func |$pkg |"
	done)
if [[ ${#targets[@]} -eq 0 ]]; then
	echo "fuzz: no fuzz targets found" >&2
	exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${FUZZTIME} each"
failed=()
for t in "${targets[@]}"; do
	read -r pkg name <<<"$t"
	echo "=== ${pkg} ${name}"
	if ! $GO test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$pkg"; then
		failed+=("$pkg $name")
	fi
done
if [[ ${#failed[@]} -gt 0 ]]; then
	printf 'fuzz: FAILED %s\n' "${failed[@]}" >&2
	echo "fuzz: the crashing inputs are under each package's testdata/fuzz/; commit them with the fix" >&2
	exit 1
fi
echo "fuzz: ${#targets[@]} targets ran ${FUZZTIME} each without a crash"

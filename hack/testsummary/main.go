// Command testsummary reads `go test -json` on standard input and prints
// what a plain `go test` prints (a line per package, the output of every
// failed test), then every test that was skipped for a missing
// prerequisite with its reason, and a closing line "N passed, N failed,
// N skipped". It exits 1 when a test or a package failed, so a run that
// skipped every end-to-end test for want of root or BIRD cannot pass for
// a green one unnoticed.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action string
	// ImportPath names the package of build-output and build-fail events.
	ImportPath string
	Package    string
	Test       string
	Output     string
	Elapsed    float64
}

type key struct{ pkg, test string }

// prerequisiteMarker starts the message of a test skipped for a missing
// prerequisite (internal/testenv.Skip).
const prerequisiteMarker = "SKIPPED, missing prerequisite"

func main() {
	failed, err := summarize(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(2)
	}
	if failed {
		os.Exit(1)
	}
}

func summarize(in io.Reader, out io.Writer) (failed bool, err error) {
	output := map[key][]string{}
	var passed, failedTests, skipped int
	type skip struct{ name, reason string }
	var prereq []skip
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if json.Unmarshal(line, &e) != nil || e.Action == "" {
			// Not JSON (a build error on stdout): pass it through.
			fmt.Fprintln(out, string(line))
			continue
		}
		k := key{e.Package, e.Test}
		switch e.Action {
		case "build-output":
			fmt.Fprint(out, e.Output)
		case "build-fail":
			failed = true
		case "output":
			output[k] = append(output[k], e.Output)
		case "pass", "fail", "skip":
			if e.Test == "" {
				switch e.Action {
				case "pass":
					fmt.Fprintf(out, "ok  \t%s\t%.3fs\n", e.Package, e.Elapsed)
				case "skip":
					fmt.Fprintf(out, "?   \t%s\t[no test files]\n", e.Package)
				case "fail":
					failed = true
					// Package-level output: a build failure, a panic, TestMain's
					// own (without go test's FAIL line, printed below).
					for _, o := range output[k] {
						if !strings.HasPrefix(o, "FAIL\t"+e.Package) {
							fmt.Fprint(out, o)
						}
					}
					fmt.Fprintf(out, "FAIL\t%s\t%.3fs\n", e.Package, e.Elapsed)
				}
				delete(output, k)
				continue
			}
			switch e.Action {
			case "pass":
				passed++
			case "fail":
				failedTests++
				failed = true
				for _, o := range output[k] {
					fmt.Fprint(out, o)
				}
			case "skip":
				skipped++
				text := strings.Join(output[k], "")
				if i := strings.Index(text, prerequisiteMarker); i >= 0 {
					reason := strings.TrimSpace(strings.SplitN(text[i+len(prerequisiteMarker):], "\n", 2)[0])
					prereq = append(prereq, skip{name: e.Package + " " + e.Test, reason: strings.TrimLeft(reason, ": ")})
				}
			}
			delete(output, k)
		}
	}
	if err := sc.Err(); err != nil {
		return true, err
	}
	// Output without a result: a test binary that timed out or crashed
	// (test2json reports the running test's failure, its parents get none).
	var pending []key
	for k, lines := range output {
		if k.test != "" && len(lines) > 0 {
			pending = append(pending, k)
		}
	}
	sort.Slice(pending, func(i, j int) bool {
		if pending[i].pkg != pending[j].pkg {
			return pending[i].pkg < pending[j].pkg
		}
		return pending[i].test < pending[j].test
	})
	for _, k := range pending {
		failed = true
		fmt.Fprintf(out, "--- NO RESULT: %s %s (its test binary timed out or crashed)\n", k.pkg, k.test)
		for _, o := range output[k] {
			fmt.Fprint(out, o)
		}
	}
	if len(prereq) > 0 {
		sort.Slice(prereq, func(i, j int) bool { return prereq[i].name < prereq[j].name })
		fmt.Fprintf(out, "\n%d tests SKIPPED for a missing prerequisite (they fail under CI=true):\n", len(prereq))
		for _, s := range prereq {
			fmt.Fprintf(out, "  %s: %s\n", s.name, s.reason)
		}
	} else {
		fmt.Fprintln(out, "\nNo test was skipped for a missing prerequisite.")
	}
	fmt.Fprintf(out, "%d passed, %d failed, %d skipped\n", passed, failedTests, skipped)
	return failed, nil
}

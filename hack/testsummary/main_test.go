package main

import (
	"strings"
	"testing"
)

func TestSummarize(t *testing.T) {
	tests := map[string]struct {
		in         string
		wantFailed bool
		want       []string
	}{
		"passes and a prerequisite skip": {
			in: `{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"pass","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestLab","Output":"    lab_test.go:9: SKIPPED, missing prerequisite: network namespaces need root\n"}
{"Action":"skip","Package":"p","Test":"TestLab"}
{"Action":"output","Package":"p","Test":"TestShort","Output":"    x_test.go:3: slow\n"}
{"Action":"skip","Package":"p","Test":"TestShort"}
{"Action":"pass","Package":"p","Elapsed":1.5}
`,
			want: []string{"ok  \tp\t1.500s", "1 tests SKIPPED for a missing prerequisite", "p TestLab: network namespaces need root", "1 passed, 0 failed, 2 skipped"},
		},
		"a failed test prints its output": {
			in: `{"Action":"output","Package":"p","Test":"TestB","Output":"    b_test.go:4: boom\n"}
{"Action":"fail","Package":"p","Test":"TestB"}
{"Action":"fail","Package":"p","Elapsed":0.2}
`,
			wantFailed: true,
			want:       []string{"b_test.go:4: boom", "FAIL\tp\t0.200s", "0 passed, 1 failed, 0 skipped"},
		},
		"a timed-out binary keeps its running tests' output": {
			in: `{"Action":"run","Package":"p","Test":"TestInstall"}
{"Action":"output","Package":"p","Test":"TestInstall","Output":"    install_test.go:124: bring-up: 3 nodes Ready\n"}
{"Action":"run","Package":"p","Test":"TestInstall/bgp"}
{"Action":"output","Package":"p","Test":"TestInstall/bgp","Output":"panic: test timed out after 40m0s\n"}
{"Action":"fail","Package":"p","Test":"TestInstall/bgp"}
{"Action":"output","Package":"p","Output":"FAIL\tp\t2400.0s\n"}
{"Action":"fail","Package":"p","Elapsed":2400}
`,
			wantFailed: true,
			want:       []string{"panic: test timed out", "NO RESULT: p TestInstall", "bring-up: 3 nodes Ready", "FAIL\tp\t2400.000s"},
		},
		"a build failure fails": {
			in: `{"ImportPath":"q [q.test]","Action":"build-output","Output":"q/x.go:1: syntax error\n"}
{"ImportPath":"q [q.test]","Action":"build-fail"}
{"Action":"output","Package":"q","Output":"FAIL\tq [build failed]\n"}
{"Action":"fail","Package":"q","FailedBuild":"q [q.test]"}
`,
			wantFailed: true,
			want:       []string{"q/x.go:1: syntax error", "FAIL\tq"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var out strings.Builder
			failed, err := summarize(strings.NewReader(tc.in), &out)
			if err != nil {
				t.Fatal(err)
			}
			if failed != tc.wantFailed {
				t.Errorf("failed = %v, want %v", failed, tc.wantFailed)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

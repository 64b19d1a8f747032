package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReplaceSectionKeepsTheHandWrittenText(t *testing.T) {
	t.Parallel()
	doc := "# Performance\n\nhand-written\n\n" + beginMarker + "\nold figures\nmore old figures\n" + endMarker + "\n\nmore hand-written\n"
	got, err := replaceSection([]byte(doc), []byte("new figures\n\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := "# Performance\n\nhand-written\n\n" + beginMarker + "\nnew figures\n" + endMarker + "\n\nmore hand-written\n"
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	again, err := replaceSection(got, []byte("new figures\n"))
	if err != nil || string(again) != want {
		t.Errorf("a rerun must give the same document: %v\n%s", err, again)
	}
	if _, err := replaceSection([]byte("# no markers\n"), []byte("x")); err == nil || !strings.Contains(err.Error(), "no generated section") {
		t.Errorf("a document without markers: err = %v, want one naming the markers", err)
	}
}

func TestRunWritesEveryScenarioAndTheMachine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	doc := filepath.Join(dir, "performance.md")
	if err := os.WriteFile(doc, []byte("intro\n"+beginMarker+"\n"+endMarker+"\noutro\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	reports := map[string]string{
		"sequential.json": `{"scenario":"sequential","arrivals":"100, one at a time","code":"print(1, flush=True)\nimport time\n","pool_replicas":4,"pool_priority_class":"gkexec-warm-pool-x",
			"modes":{"cold":{"executions":100,"failures":0,"warm":0,"runner":{"count":100,"p50":1.2,"p95":1.5,"p99":1.6,"max":1.7,"throughput_per_second":0.8},
			"first_output":{"count":100,"p50":0.95,"p95":1.2,"p99":1.3},"ratio_p50":0.55},
			"session":{"executions":100,"failures":1,"first_errors":["boom"],"warm":99,"runner":{"count":99,"p50":0.21,"p95":0.25,"p99":0.3,"max":0.4,"throughput_per_second":4.5},"session_open":0.35,"ratio_p50":0.1}},
			"order":["cold","session"],"floor":{"count":100,"p50":2.2,"p95":2.6,"p99":2.8,"max":3,"throughput_per_second":0.45},"floor_first_output":{"count":100,"p50":1.9,"p95":2.1,"p99":2.2}}`,
		"burst.json": `{"scenario":"burst","arrivals":"100 at once","modes":{"cold":{"executions":100,"warm":0,"runner":{"count":100,"p50":9.5,"p95":15,"p99":16,"max":17,"throughput_per_second":5.1}}},"order":["cold"],
			"burst":{"size":4,"warm":4,"p50":0.3,"max":0.4,"refill_seconds":4.5,"refill_pods_per_second":0.9}}`,
	}
	var paths []string
	for _, name := range []string{"sequential.json", "burst.json"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(reports[name]), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	if err := run(append([]string{"-doc", doc, "-machine", "AMD EPYC, 2 CPUs", "-run", "2026-12-05, commit abc1234"}, paths...)); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(doc)
	for _, want := range []string{
		"intro\n" + beginMarker + "\nRan on AMD EPYC, 2 CPUs; 2026-12-05, commit abc1234.\n",
		"Code `print(1, flush=True); import time`; a warm pool of 4 installed for the run at the lower PriorityClass the module and manifests give it (value -1)",
		"| **sequential** (100, one at a time) | cold (a Job each) | 100/100 | 0 | 1.20 s | 1.50 s | 1.60 s | 1.70 s | 950 ms / 1.20 s / 1.30 s | 0.55x | 0.80/s |",
		"|  | session (one, opened ahead) | 99/100 | 99 | 210 ms | 250 ms | 300 ms | 400 ms | — | 0.10x | 4.50/s |",
		"|  | floor (bare Pod) | 100/100 | — | 2.20 s | 2.60 s | 2.80 s | 3.00 s | 1.90 s / 2.10 s / 2.20 s | 1 | 0.45/s |",
		"| **burst** (100 at once) | cold (a Job each) | 100/100 | 0 | 9.50 s | 15.0 s | 16.0 s | 17.0 s | — | — | 5.10/s |",
		"- sequential: the session opened in 350 ms.",
		"- sequential, session: 1 failed: boom",
		"- burst: a burst as large as the pool (4 at once, claimed on request) ran 4 warm, p50 300 ms, max 400 ms; the pool was full again 4.5 s after it started.",
		endMarker + "\noutro\n",
	} {
		if !strings.Contains(string(got), want) {
			t.Errorf("the document lacks\n  %s\n---\n%s", want, got)
		}
	}
}

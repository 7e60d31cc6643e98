package deploy

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sestream/sestream/internal/testfixtures"
)

// testInterval is the default scrape and rule evaluation interval of the Prometheus the tests run (5 s and
// 15 s in the shipped prometheus.yml).
const testInterval = time.Second

// promServer is Debian's Prometheus run as a process on a free loopback port, with a temporary storage
// directory, loading the shipped prometheus.yml and alerts.yml as rewritten by startPrometheus.
type promServer struct {
	t    *testing.T
	proc *process
	// URL is the base URL of its HTTP API and UI.
	URL string
}

// promSetup says how startPrometheus rewrites the shipped files in its temporary copy.
type promSetup struct {
	// Targets maps a scrape target of prometheus.yml (a compose host:port such as "sestream:9090") to the
	// loopback address that stands for it. Every static target must have one.
	Targets map[string]string
	// For replaces the `for:` of the named alerts, so that a test need not wait minutes for them.
	For map[string]time.Duration
	// Interval is the scrape and evaluation interval; zero means testInterval.
	Interval time.Duration
}

// needPrometheus returns the paths of prometheus and promtool, skipping the test when either is absent.
func needPrometheus(t *testing.T) (prometheus, promtool string) {
	t.Helper()
	return needBinary(t, "prometheus", "prometheus"), needBinary(t, "promtool", "prometheus")
}

// startPrometheus writes prometheus.yml and its rule files, rewritten as s says, into a temporary directory,
// starts Prometheus on them and waits until it is ready.
func startPrometheus(t *testing.T, s promSetup) *promServer {
	t.Helper()
	bin, _ := needPrometheus(t)
	dir := t.TempDir()
	var cfg map[string]any
	readYAML(t, "prometheus/prometheus.yml", &cfg)
	global, _ := cfg["global"].(map[string]any)
	if global == nil {
		global = map[string]any{}
		cfg["global"] = global
	}
	interval := s.Interval
	if interval <= 0 {
		interval = testInterval
	}
	global["scrape_interval"] = interval.String()
	global["evaluation_interval"] = interval.String()
	if interval < time.Second {
		global["scrape_timeout"] = interval.String()
	}
	for _, sc := range list(cfg["scrape_configs"]) {
		for _, st := range list(sc.(map[string]any)["static_configs"]) {
			st := st.(map[string]any)
			// The stack's second fleet instance (sestream-2) is left out: these tests run one sestream.
			var targets []any
			for _, tg := range list(st["targets"]) {
				addr, ok := s.Targets[tg.(string)]
				if !ok && tg.(string) == "sestream-2:9090" {
					continue
				}
				if !ok {
					t.Fatalf("prometheus.yml scrapes %v, which this test does not run", tg)
				}
				targets = append(targets, addr)
			}
			st["targets"] = targets
		}
	}
	overridden := map[string]bool{}
	for _, f := range list(cfg["rule_files"]) {
		name := f.(string)
		if filepath.IsAbs(name) || strings.Contains(name, "..") {
			t.Fatalf("prometheus.yml: rule file %s is not relative to prometheus.yml", name)
		}
		var rules map[string]any
		readYAML(t, filepath.Join("prometheus", name), &rules)
		for _, g := range list(rules["groups"]) {
			for _, r := range list(g.(map[string]any)["rules"]) {
				r := r.(map[string]any)
				alert, _ := r["alert"].(string)
				if d, ok := s.For[alert]; ok {
					t.Logf("%s: for: %v in the shipped rules, %v in this test's copy", alert, orNone(r["for"]), d)
					r["for"] = d.String()
					overridden[alert] = true
				}
			}
		}
		writeYAML(t, filepath.Join(dir, name), rules)
	}
	for alert := range s.For {
		if !overridden[alert] {
			t.Fatalf("no alert %s in the rule files of prometheus.yml", alert)
		}
	}
	writeYAML(t, filepath.Join(dir, "prometheus.yml"), cfg)

	addr := loopback(testfixtures.FreePort(t))
	p := &promServer{t: t, URL: "http://" + addr}
	p.proc = startProcess(t, "prometheus", dir, bin,
		"--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn")
	waitFor(t, "Prometheus ready", 60*time.Second, p.proc, func() bool { return httpOK(p.URL + "/-/ready") })
	return p
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

func orNone(v any) any {
	if v == nil {
		return "(none)"
	}
	return v
}

func writeYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// apiGet calls the Prometheus HTTP API and decodes its data field into v.
func (p *promServer) apiGet(path string, params url.Values, v any) error {
	u := p.URL + path
	if params != nil {
		u += "?" + params.Encode()
	}
	resp, err := httpClient.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("GET %s: %s: %w", u, resp.Status, err)
	}
	if body.Status != "success" {
		return fmt.Errorf("GET %s: %s: %s", u, resp.Status, body.Error)
	}
	return json.Unmarshal(body.Data, v)
}

// sample is one series of an instant query's result.
type sample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"` // [unix seconds, "value"]
}

// query runs an instant PromQL query now; an expression Prometheus rejects fails the test.
func (p *promServer) query(expr string) []sample {
	p.t.Helper()
	var data struct {
		ResultType string   `json:"resultType"`
		Result     []sample `json:"result"`
	}
	if err := p.apiGet("/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
		p.t.Fatalf("query %q: %v", expr, err)
	}
	if data.ResultType != "vector" {
		p.t.Fatalf("query %q: result type %s, want vector", expr, data.ResultType)
	}
	return data.Result
}

// point is one raw sample of a series.
type point struct {
	At    time.Time
	Value float64
}

// series returns the raw samples of every series a range selector selects (e.g. `up[5m]`), keyed by the
// series' labels in Prometheus' notation.
func (p *promServer) series(selector string) map[string][]point {
	p.t.Helper()
	var data struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Values [][2]any          `json:"values"`
		} `json:"result"`
	}
	if err := p.apiGet("/api/v1/query", url.Values{"query": {selector}}, &data); err != nil {
		p.t.Fatalf("query %q: %v", selector, err)
	}
	if data.ResultType != "matrix" {
		p.t.Fatalf("query %q: result type %s, want matrix (a range selector)", selector, data.ResultType)
	}
	out := map[string][]point{}
	for _, r := range data.Result {
		var pts []point
		for _, v := range r.Values {
			sec, _ := v[0].(float64)
			s, _ := v[1].(string)
			f, err := strconv.ParseFloat(s, 64)
			if err != nil {
				p.t.Fatalf("query %q: value %v: %v", selector, v[1], err)
			}
			pts = append(pts, point{time.Unix(0, int64(sec*1e9)), f})
		}
		out[labelString(r.Metric)] = pts
	}
	return out
}

func labelString(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(m["__name__"] + "{")
	for _, k := range keys {
		if k == "__name__" {
			continue
		}
		if b.Len() > len(m["__name__"])+1 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%q", k, m[k])
	}
	b.WriteString("}")
	return b.String()
}

// waitQuery waits until expr returns at least one series.
func (p *promServer) waitQuery(expr string, timeout time.Duration, watch *process) []sample {
	p.t.Helper()
	var got []sample
	waitFor(p.t, "result for "+expr, timeout, watch, func() bool {
		got = p.query(expr)
		return len(got) > 0
	})
	return got
}

// alert is one entry of /api/v1/alerts: an alert pending or firing.
type alert struct {
	Labels   map[string]string `json:"labels"`
	State    string            `json:"state"`
	ActiveAt time.Time         `json:"activeAt"`
}

// alerts returns the alerts named name that are pending or firing now and carry every label of match.
func (p *promServer) alerts(name string, match map[string]string) []alert {
	p.t.Helper()
	var data struct {
		Alerts []alert `json:"alerts"`
	}
	if err := p.apiGet("/api/v1/alerts", nil, &data); err != nil {
		p.t.Fatalf("alerts: %v", err)
	}
	var out []alert
	for _, a := range data.Alerts {
		if a.Labels["alertname"] != name {
			continue
		}
		ok := true
		for k, v := range match {
			ok = ok && a.Labels[k] == v
		}
		if ok {
			out = append(out, a)
		}
	}
	return out
}

// requireQuiet fails the test if the alert is pending or firing.
func (p *promServer) requireQuiet(name string, match map[string]string) {
	p.t.Helper()
	if got := p.alerts(name, match); len(got) > 0 {
		p.t.Fatalf("%s %v is %s before the fault (active since %s)", name, match, got[0].State, got[0].ActiveAt.Format(time.RFC3339Nano))
	}
}

// waitFiring waits until the alert fires and returns it; the test fails after timeout.
func (p *promServer) waitFiring(name string, match map[string]string, timeout time.Duration) alert {
	p.t.Helper()
	var got alert
	waitFor(p.t, name+" firing", timeout, nil, func() bool {
		for _, a := range p.alerts(name, match) {
			if a.State == "firing" {
				got = a
				return true
			}
		}
		return false
	})
	return got
}

// ruleHealth fails the test for every rule Prometheus could not evaluate.
func (p *promServer) ruleHealth() {
	p.t.Helper()
	var data struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Name      string `json:"name"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := p.apiGet("/api/v1/rules", nil, &data); err != nil {
		p.t.Fatalf("rules: %v", err)
	}
	n := 0
	for _, g := range data.Groups {
		for _, r := range g.Rules {
			n++
			if r.Health == "err" {
				p.t.Errorf("rule %s of group %s: %s", r.Name, g.Name, r.LastError)
			}
		}
	}
	if n == 0 {
		p.t.Error("Prometheus loaded no rules")
	}
}

// sestreamTargets maps the scrape targets of prometheus.yml on the compose service sestream to addr.
func sestreamTargets(t *testing.T, addr string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, tg := range prometheusTargets(t) {
		if h, _, err := net.SplitHostPort(tg); err == nil && h == "sestream" {
			m[tg] = addr
		}
	}
	if len(m) == 0 {
		t.Fatalf("prometheus.yml scrapes %v: no target on the sestream service", prometheusTargets(t))
	}
	return m
}

package deploy

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sestream/sestream/metrics"
	"github.com/sestream/sestream/pipeline"
)

// exposedNames scrapes /metrics of a Metrics that every method has been driven through and returns the sample
// names it exposes (histograms as _bucket, _sum and _count).
func exposedNames(t *testing.T) map[string]bool {
	t.Helper()
	m := metrics.New(metrics.Options{Version: "test", MaxBatch: 8})
	m.Watch(metrics.Sources{
		Streams: func() []pipeline.StreamStats {
			return []pipeline.StreamStats{{Stream: "cam1", Captured: 10, Dropped: 1, Processed: 9, Published: 9, QueueCap: 16}}
		},
		NATS:    func() metrics.NATSState { return metrics.NATSState{Connected: true, JetStream: true} },
		Workers: func() (int, int) { return 1, 1 },
	})
	d := 0.1
	m.ModelLoaded(metrics.ModelInfo{Name: "fashion-se", Digest: "sha256:0", Engine: "onnxruntime", SEBlocks: 2})
	m.ObserveBatch(4, 8, time.Millisecond)
	m.ObserveFrame("cam1", 20*time.Millisecond)
	m.SetAttention("cam1", "se1", 0.5, 0.1, 0.9, &d)
	m.SetDrift("cam1", false)
	m.SetSourceState("cam1", "running")
	m.SourceReconnect("cam1")

	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names
}

var metricName = regexp.MustCompile(`\bsestream_[a-z0-9_]+`)

// checkQueries fails for every sestream_* name in exprs that /metrics does not expose.
func checkQueries(t *testing.T, where string, exprs []string) {
	t.Helper()
	names := exposedNames(t)
	if len(exprs) == 0 {
		t.Fatalf("%s: no queries found", where)
	}
	for _, e := range exprs {
		for _, n := range metricName.FindAllString(e, -1) {
			if !names[n] {
				t.Errorf("%s queries %s, which /metrics does not expose (in %q)", where, n, e)
			}
		}
	}
}

// dashboard is the part of a Grafana dashboard JSON model the tests read.
type dashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Definition string `json:"definition"`
			Datasource struct {
				UID string `json:"uid"`
			} `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID         int    `json:"id"`
		Title      string `json:"title"`
		Type       string `json:"type"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		Targets []struct {
			Expr  string `json:"expr"`
			RefID string `json:"refId"`
		} `json:"targets"`
	} `json:"panels"`
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile("grafana/dashboards/sestream.json")
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(b) {
		t.Fatal("grafana/dashboards/sestream.json is not valid JSON")
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("grafana/dashboards/sestream.json: %v", err)
	}
	return d
}

func TestDashboardQueriesExist(t *testing.T) {
	d := readDashboard(t)
	var exprs []string
	for _, v := range d.Templating.List {
		exprs = append(exprs, v.Definition)
	}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	checkQueries(t, "the Grafana dashboard", exprs)
}

// TestDashboardShape checks the dashboard shows what the stack promises (fps, latency, drops, batch fill, SE
// entropy per block) from the provisioned data source, with unique panel ids.
func TestDashboardShape(t *testing.T) {
	d := readDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("dashboard uid %q, title %q: both are needed for provisioning", d.UID, d.Title)
	}
	var ds struct {
		Datasources []struct {
			UID  string `yaml:"uid"`
			Type string `yaml:"type"`
			URL  string `yaml:"url"`
		} `yaml:"datasources"`
	}
	b, err := os.ReadFile("grafana/provisioning/datasources/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &ds); err != nil {
		t.Fatal(err)
	}
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" {
		t.Fatalf("provisioned data sources %+v, want one prometheus", ds.Datasources)
	}
	uid := ds.Datasources[0].UID
	ids := map[int]bool{}
	var all strings.Builder
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d is used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Datasource.UID != uid {
			t.Errorf("panel %q uses data source %q, want the provisioned %q", p.Title, p.Datasource.UID, uid)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no queries", p.Title)
		}
		for _, tg := range p.Targets {
			all.WriteString(tg.Expr + "\n")
		}
	}
	for what, metric := range map[string]string{
		"fps":              "rate(sestream_frames_captured_total",
		"latency":          "sestream_frame_latency_seconds_bucket",
		"drops":            "sestream_frames_dropped_total",
		"batch fill":       "sestream_batch_fill_ratio",
		"entropy by block": "sestream_attention_entropy",
	} {
		if !strings.Contains(all.String(), metric) {
			t.Errorf("the dashboard shows no %s (no query uses %s)", what, metric)
		}
	}
}

func TestAlertRulesQueriesExist(t *testing.T) {
	var rules struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	b, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatalf("prometheus/alerts.yml: %v", err)
	}
	var exprs, names []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" {
				t.Errorf("group %s: a rule without alert name or expr: %+v", g.Name, r)
			}
			if slices.Contains(names, r.Alert) {
				t.Errorf("alert %s is defined twice", r.Alert)
			}
			names = append(names, r.Alert)
			exprs = append(exprs, r.Expr)
		}
	}
	checkQueries(t, "prometheus/alerts.yml", exprs)
}

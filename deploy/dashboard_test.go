package deploy

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

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
		ID      int    `json:"id"`
		Title   string `json:"title"`
		Type    string `json:"type"`
		GridPos struct {
			X, Y, W, H int
		} `json:"gridPos"`
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

// TestDashboardShape checks the dashboard shows what the stack promises (fps, latency, drops, batch fill, the
// SE drift score per block and the drift alarm, SE entropy per block) from the provisioned data source, with
// unique panel ids; the drift score and alarm lead the SE panels, above entropy.
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
		"drift score":      "sestream_attention_drift_score",
		"drift alarm":      "sestream_attention_drift_active",
	} {
		if !strings.Contains(all.String(), metric) {
			t.Errorf("the dashboard shows no %s (no query uses %s)", what, metric)
		}
	}
	// top returns the highest row of the panels querying metric, and the panel's type.
	top := func(metric string) (int, string) {
		y, typ := -1, ""
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				if strings.Contains(tg.Expr, metric) && (y < 0 || p.GridPos.Y < y) {
					y, typ = p.GridPos.Y, p.Type
				}
			}
		}
		return y, typ
	}
	entropy, _ := top("sestream_attention_entropy")
	for metric, types := range map[string][]string{
		"sestream_attention_drift_score":  {"timeseries", "heatmap"},
		"sestream_attention_drift_active": {"state-timeline", "status-history", "stat"},
	} {
		y, typ := top(metric)
		if y >= 0 && y > entropy {
			t.Errorf("the %s panel (row %d) is below the entropy panel (row %d): the drift score leads the SE panels", metric, y, entropy)
		}
		if y >= 0 && !slices.Contains(types, typ) {
			t.Errorf("%s is shown in a %s panel, want one of %v", metric, typ, types)
		}
	}
}

// alertRules is the part of alerts.yml the tests read.
type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert string `yaml:"alert"`
			Expr  string `yaml:"expr"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// TestAlertRulesWellFormed checks every rule has a name and an expression, and no name is used twice.
func TestAlertRulesWellFormed(t *testing.T) {
	var rules alertRules
	readYAML(t, "prometheus/alerts.yml", &rules)
	var names []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" {
				t.Errorf("group %s: a rule without alert name or expr: %+v", g.Name, r)
			}
			if slices.Contains(names, r.Alert) {
				t.Errorf("alert %s is defined twice", r.Alert)
			}
			names = append(names, r.Alert)
		}
	}
	if len(names) == 0 {
		t.Error("prometheus/alerts.yml defines no alerts")
	}
}

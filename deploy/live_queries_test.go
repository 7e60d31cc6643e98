package deploy

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sestream/sestream/internal/testfixtures"
)

var metricName = regexp.MustCompile(`\bsestream_[a-z0-9_]+`)

// grafanaVariable matches $name and ${name} in a dashboard query.
var grafanaVariable = regexp.MustCompile(`\$\{?(\w+)\}?`)

// expandVariables replaces the dashboard's variables as Grafana would with every value selected.
func expandVariables(t *testing.T, expr string) string {
	t.Helper()
	return grafanaVariable.ReplaceAllStringFunc(expr, func(v string) string {
		switch strings.Trim(v, "${}") {
		case "stream":
			return ".*"
		case "__rate_interval", "__interval", "__range":
			return "1m"
		}
		t.Errorf("query %q uses variable %s, which this test does not know", expr, v)
		return v
	})
}

// TestQueriesLive runs sestream on the looped sample video, scraped every second by Debian's Prometheus with
// the shipped configuration and rules, and checks the Grafana dashboard and the alert rules against what
// Prometheus holds: every sestream_* metric they name is in the scrape, every panel's query returns series,
// the stream variable lists the stream, and every rule evaluates without error.
func TestQueriesLive(t *testing.T) {
	needPrometheus(t)
	s := startSestream(t, fmt.Sprintf(`streams:
  - name: cam
    url: %s
    loop: true
    realtime: true
    fps: 6
nats:
  embedded:
    listen: %s
%s`, sampleVideo(t), loopback(testfixtures.FreePort(t)), lightEngine))
	prom := startPrometheus(t, promSetup{Targets: sestreamTargets(t, s.Addr)})
	prom.waitQuery(`rate(sestream_frames_published_total{stream="cam"}[1m]) > 0`, 60*time.Second, s.process)

	type panelQuery struct{ panel, expr string }
	d := readDashboard(t)
	var queries []panelQuery
	var dashboardExprs []string
	for _, v := range d.Templating.List {
		dashboardExprs = append(dashboardExprs, v.Definition)
	}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			queries = append(queries, panelQuery{p.Title, tg.Expr})
			dashboardExprs = append(dashboardExprs, tg.Expr)
		}
	}
	if len(queries) == 0 {
		t.Fatal("the dashboard has no panel queries")
	}

	// Rates over [1m] need two scrapes, the attention gauges a processed frame: wait until every panel has
	// data, then report the ones that still have none.
	var empty []panelQuery
	deadline := time.Now().Add(30 * time.Second)
	for {
		empty = empty[:0]
		for _, q := range queries {
			if len(prom.query(expandVariables(t, q.expr))) == 0 {
				empty = append(empty, q)
			}
		}
		if len(empty) == 0 || time.Now().After(deadline) || s.exited() {
			break
		}
		time.Sleep(time.Second)
	}
	scraped := map[string]bool{}
	for _, smp := range prom.query(`count by (__name__) ({__name__=~"sestream_.+", job="sestream"})`) {
		scraped[smp.Metric["__name__"]] = true
	}
	checkNames := func(t *testing.T, where string, exprs []string) {
		t.Helper()
		for _, e := range exprs {
			for _, n := range metricName.FindAllString(e, -1) {
				if !scraped[n] {
					t.Errorf("%s queries %s, which is not in the live scrape (in %q)", where, n, e)
				}
			}
		}
	}

	t.Run("dashboard", func(t *testing.T) {
		checkNames(t, "the Grafana dashboard", dashboardExprs)
		for _, q := range empty {
			t.Errorf("panel %q: query %q returns no series from a running sestream", q.panel, q.expr)
		}
		for _, v := range d.Templating.List {
			m := regexp.MustCompile(`^label_values\((\w+),\s*(\w+)\)$`).FindStringSubmatch(v.Definition)
			if m == nil {
				t.Errorf("variable %s: definition %q is not label_values(metric, label)", v.Name, v.Definition)
				continue
			}
			var values []string
			if err := prom.apiGet("/api/v1/label/"+m[2]+"/values", url.Values{"match[]": {m[1]}}, &values); err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(values, "cam") {
				t.Errorf("variable %s (%s) lists %v, want the stream cam", v.Name, v.Definition, values)
			}
		}
	})
	t.Run("alert rules", func(t *testing.T) {
		var rules alertRules
		readYAML(t, "prometheus/alerts.yml", &rules)
		var exprs []string
		for _, g := range rules.Groups {
			for _, r := range g.Rules {
				exprs = append(exprs, r.Expr)
			}
		}
		checkNames(t, "prometheus/alerts.yml", exprs)
		prom.ruleHealth()
	})
	if t.Failed() {
		names := make([]string, 0, len(scraped))
		for n := range scraped {
			names = append(names, n)
		}
		sort.Strings(names)
		t.Logf("sestream_* metrics in the scrape: %s", strings.Join(names, " "))
	}
}

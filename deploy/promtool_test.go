package deploy

import (
	"os/exec"
	"slices"
	"testing"
)

// promtool runs promtool with args in deploy/prometheus and fails the test with its output on an error.
func promtool(t *testing.T, args ...string) {
	t.Helper()
	_, bin := needPrometheus(t)
	cmd := exec.Command(bin, args...)
	cmd.Dir = "prometheus"
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %v: %v\n%s", args, err, out)
	}
	t.Logf("promtool %v:\n%s", args, out)
}

// TestPromtoolCheckConfig checks the shipped prometheus.yml and, through it, the rule files it names.
func TestPromtoolCheckConfig(t *testing.T) { promtool(t, "check", "config", "prometheus.yml") }

func TestPromtoolCheckRules(t *testing.T) { promtool(t, "check", "rules", "alerts.yml") }

// TestPromtoolTestRules runs the unit tests of the alert rules, prometheus/alerts_test.yml.
func TestPromtoolTestRules(t *testing.T) { promtool(t, "test", "rules", "alerts_test.yml") }

// TestEveryAlertUnitTested checks that alerts_test.yml has, for every alert of alerts.yml, a case where it
// fires and one where it must not, and tests no alert that does not exist.
func TestEveryAlertUnitTested(t *testing.T) {
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, "prometheus/alerts.yml", &rules)
	var unit struct {
		RuleFiles []string `yaml:"rule_files"`
		Tests     []struct {
			AlertRuleTest []struct {
				AlertName string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	readYAML(t, "prometheus/alerts_test.yml", &unit)
	if !slices.Equal(unit.RuleFiles, []string{"alerts.yml"}) {
		t.Errorf("alerts_test.yml loads %v, want [alerts.yml]", unit.RuleFiles)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range unit.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.AlertName] = true
			} else {
				quiet[a.AlertName] = true
			}
		}
	}
	defined := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			defined[r.Alert] = true
			if !fires[r.Alert] {
				t.Errorf("alerts_test.yml has no case where %s fires", r.Alert)
			}
			if !quiet[r.Alert] {
				t.Errorf("alerts_test.yml has no case where %s must not fire", r.Alert)
			}
		}
	}
	for name := range fires {
		if !defined[name] {
			t.Errorf("alerts_test.yml tests %s, which alerts.yml does not define", name)
		}
	}
	for name := range quiet {
		if !defined[name] {
			t.Errorf("alerts_test.yml tests %s, which alerts.yml does not define", name)
		}
	}
}

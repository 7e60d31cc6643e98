package deploy

import (
	"context"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"

	"github.com/sestream/sestream/config"
)

// root is the repository's top level, where docker-compose.yml and the Dockerfile are.
const root = ".."

// bundledModel is the model the image carries (sestream.BundledModel).
const bundledModel = "models/fashion-se.onnx"

// loadProject loads docker-compose.yml with compose-go, as `docker compose` does, with no variables from the
// environment of the test process.
func loadProject(t *testing.T) *types.Project {
	t.Helper()
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cli.NewProjectOptions([]string{filepath.Join(abs, "docker-compose.yml")},
		cli.WithWorkingDirectory(abs), cli.WithName("sestream"), cli.WithResolvedPaths(true))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return p
}

// sestreamServices are the services that run `sestream run` (as opposed to sub).
func sestreamServices(p *types.Project) []types.ServiceConfig {
	var out []types.ServiceConfig
	for _, s := range p.Services {
		if len(s.Command) > 0 && s.Command[0] == "run" {
			out = append(out, s)
		}
	}
	return out
}

func TestComposeServices(t *testing.T) {
	p := loadProject(t)
	want := []string{"feeder", "grafana", "nats", "nats-2", "nats-3", "prometheus", "rtsp", "sestream", "sestream-2", "subscriber"}
	if got := p.ServiceNames(); !slices.Equal(sorted(got), want) {
		t.Fatalf("services %v, want %v", sorted(got), want)
	}
	for name, s := range p.Services {
		t.Run(name, func(t *testing.T) {
			if s.Image == "" && s.Build == nil {
				t.Errorf("has neither image nor build")
			}
			if s.Build != nil {
				df := s.Build.Dockerfile
				if df == "" {
					df = "Dockerfile"
				}
				if _, err := os.Stat(filepath.Join(s.Build.Context, df)); err != nil {
					t.Errorf("build: %v", err)
				}
			}
			if s.Image != "" && s.Build == nil && !strings.Contains(s.Image, ":") {
				t.Errorf("image %q has no tag: pin a version", s.Image)
			}
			if hc := s.HealthCheck; hc == nil || hc.Disable || len(hc.Test) < 2 {
				t.Errorf("has no health check")
			}
			for dep, d := range s.DependsOn {
				ds, ok := p.Services[dep]
				if !ok {
					t.Errorf("depends on %q, which is not a service", dep)
					continue
				}
				switch d.Condition {
				case types.ServiceConditionHealthy:
					if ds.HealthCheck == nil {
						t.Errorf("waits for %s to be healthy, but %s has no health check", dep, dep)
					}
				case types.ServiceConditionStarted:
				default:
					t.Errorf("depends on %s with condition %q, want service_healthy or service_started", dep, d.Condition)
				}
			}
		})
	}
	// sestream starts only after every NATS node is healthy and the camera is up.
	for _, s := range sestreamServices(p) {
		for _, dep := range []string{"nats", "nats-2", "nats-3", "feeder"} {
			if s.DependsOn[dep].Condition != types.ServiceConditionHealthy {
				t.Errorf("%s: depends_on %s: condition %q, want service_healthy", s.Name, dep, s.DependsOn[dep].Condition)
			}
		}
	}
	if len(sestreamServices(p)) != 2 {
		t.Errorf("%d services run `sestream run`, want 2 (a fleet)", len(sestreamServices(p)))
	}
}

// TestComposeNATSCluster: the three nats services form one cluster, each routing to the other two, with
// JetStream and a name of its own.
func TestComposeNATSCluster(t *testing.T) {
	p := loadProject(t)
	nodes := []string{"nats", "nats-2", "nats-3"}
	for _, name := range nodes {
		cmd := p.Services[name].Command
		if !slices.Contains(cmd, "--jetstream") {
			t.Errorf("%s: no --jetstream in %v", name, cmd)
		}
		if got := argAfter(cmd, "--server_name"); got != name {
			t.Errorf("%s: --server_name %q, want %q", name, got, name)
		}
		if got := argAfter(cmd, "--cluster_name"); got != "sestream" {
			t.Errorf("%s: --cluster_name %q, want sestream", name, got)
		}
		routes := strings.Split(argAfter(cmd, "--routes"), ",")
		for _, other := range nodes {
			want := "nats://" + other + ":6222"
			if (other != name) != slices.Contains(routes, want) {
				t.Errorf("%s: --routes %v: route to %s wrong (want routes to the other two nodes only)", name, routes, other)
			}
		}
	}
}

func TestComposePorts(t *testing.T) {
	p := loadProject(t)
	seen := map[string]string{}
	for _, name := range sorted(p.ServiceNames()) {
		for _, port := range p.Services[name].Ports {
			if port.Published == "" {
				continue
			}
			if port.HostIP != "127.0.0.1" {
				t.Errorf("%s: port %s is published on %q, want 127.0.0.1 only", name, port.Published, port.HostIP)
			}
			proto := port.Protocol
			if proto == "" {
				proto = "tcp"
			}
			// Two bindings collide when they share the port and protocol and either takes every address.
			key := port.Published + "/" + proto
			if other, ok := seen[key]; ok {
				t.Errorf("host port %s is published by both %s and %s", key, other, name)
			}
			seen[key] = name
		}
	}
	if len(seen) == 0 {
		t.Error("no ports published")
	}
}

func TestComposeMounts(t *testing.T) {
	p := loadProject(t)
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range sorted(p.ServiceNames()) {
		for _, v := range p.Services[name].Volumes {
			if v.Type != types.VolumeTypeBind {
				if _, ok := p.Volumes[v.Source]; v.Type == types.VolumeTypeVolume && !ok {
					t.Errorf("%s: volume %q is not declared", name, v.Source)
				}
				continue
			}
			rel, err := filepath.Rel(abs, v.Source)
			if err != nil || strings.HasPrefix(rel, "..") {
				t.Errorf("%s: mounts %s, outside the repository", name, v.Source)
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("%s: mounts %s, which does not exist in the repository: %v", name, rel, err)
			}
			if !v.ReadOnly {
				t.Errorf("%s: mounts %s read-write; repository files are mounted read-only", name, rel)
			}
		}
	}
}

// mountedFile returns the host path mounted at target in s, or "".
func mountedFile(s types.ServiceConfig, target string) string {
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind && v.Target == target {
			return v.Source
		}
	}
	return ""
}

// argAfter returns the argument after flag in args, or "".
func argAfter(args []string, flag string) string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// TestComposeSestreamConfig loads sestream's configuration the way the container does: the mounted file plus
// the SESTREAM_* environment of the service, through config.Load and its validation; then checks that it
// points at the stack's own services.
func TestComposeSestreamConfig(t *testing.T) {
	p := loadProject(t)
	known := map[string]bool{}
	for _, k := range config.Keys() {
		known[config.EnvName(k)] = true
	}
	for _, s := range sestreamServices(p) {
		t.Run(s.Name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range s.Environment {
				if v == nil {
					t.Errorf("environment %s has no value", k)
					continue
				}
				if strings.HasPrefix(k, config.EnvPrefix+"_") && !known[k] {
					t.Errorf("environment %s names no configuration key (config.Load would ignore it)", k)
				}
				env[k] = *v
			}
			file := argAfter(s.Command, "--config")
			if file == "" {
				t.Fatalf("command %v has no --config: the stream list comes from a mounted file", s.Command)
			}
			host := mountedFile(s, file)
			if host == "" {
				t.Fatalf("--config %s is not a file mounted from the repository", file)
			}
			cfg, err := config.Load(config.Options{File: host, LookupEnv: func(k string) (string, bool) {
				v, ok := env[k]
				return v, ok
			}})
			if err != nil {
				t.Fatalf("sestream's configuration (%s + environment) does not validate:\n%v", host, err)
			}
			if len(cfg.Streams) == 0 {
				t.Fatalf("%s has no streams", host)
			}
			checkPointsAtStack(t, p, s, cfg)
		})
	}
}

func checkPointsAtStack(t *testing.T, p *types.Project, s types.ServiceConfig, cfg *config.Config) {
	t.Helper()
	// NATS: the nats service, with JetStream, which the server runs.
	for _, u := range cfg.NATS.URLs() {
		if host := hostOf(t, u); p.Services[host].Name == "" {
			t.Errorf("nats.url %s: host %q is not a service of the stack", u, host)
		}
	}
	if !cfg.NATS.JetStream.Enabled {
		t.Errorf("nats.jetstream.enabled is false; the demo stack publishes with JetStream")
	}
	if !slices.Contains(p.Services["nats"].Command, "--jetstream") {
		t.Errorf("the nats service does not run with --jetstream: %v", p.Services["nats"].Command)
	}
	// Fleet: both instances in one fleet, with every node's URL and three replicas, so that the loss of a
	// node or an instance stops nothing.
	if f := cfg.Fleet; !f.Enabled || f.Name != "demo" || f.Replicas != 3 || cfg.NATS.JetStream.Replicas != 3 || len(cfg.NATS.URLs()) != 3 {
		t.Errorf("fleet %+v, jetstream replicas %d, nats urls %v: want fleet demo with 3 replicas over the 3 nodes",
			f, cfg.NATS.JetStream.Replicas, cfg.NATS.URLs())
	}
	if f := cfg.Fleet; f.Instance != s.Name {
		t.Errorf("fleet.instance %q, want the service name %q", f.Instance, s.Name)
	}
	// HTTP: listening on all interfaces inside the container, on the port the service publishes and
	// Prometheus scrapes.
	_, port, err := net.SplitHostPort(cfg.HTTP.Listen)
	if err != nil {
		t.Fatalf("http.listen %q: %v", cfg.HTTP.Listen, err)
	}
	published := false
	for _, pc := range s.Ports {
		if fmt.Sprint(pc.Target) == port {
			published = true
		}
	}
	if !published {
		t.Errorf("http.listen port %s is not published by %s", port, s.Name)
	}
	targets := prometheusTargets(t)
	if want := s.Name + ":" + port; !slices.Contains(targets, want) {
		t.Errorf("prometheus scrapes %v, want %s", targets, want)
	}
	// Streams: each reads a path of the rtsp service that the feeder publishes.
	feederOut := p.Services["feeder"].Command[len(p.Services["feeder"].Command)-1]
	for _, st := range cfg.Streams {
		if host := hostOf(t, st.URL); p.Services[host].Name == "" {
			t.Errorf("stream %s: %s: host %q is not a service of the stack", st.Name, st.URL, host)
		}
		if st.URL != feederOut {
			t.Errorf("stream %s reads %s, but the feeder publishes %s", st.Name, st.URL, feederOut)
		}
	}
}

func hostOf(t *testing.T, rawURL string) string {
	t.Helper()
	m := regexp.MustCompile(`^[a-z]+://(?:[^@/]*@)?([^:/]+)`).FindStringSubmatch(rawURL)
	if m == nil {
		t.Fatalf("cannot find the host in %q", rawURL)
	}
	return m[1]
}

// prometheusTargets returns the static targets of deploy/prometheus/prometheus.yml.
func prometheusTargets(t *testing.T) []string {
	t.Helper()
	var cfg struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, "prometheus/prometheus.yml", &cfg)
	var out []string
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			out = append(out, st.Targets...)
		}
	}
	return out
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestPrometheusRuleFilesMounted checks that every rule file prometheus.yml names is mounted into the
// prometheus service.
func TestPrometheusRuleFilesMounted(t *testing.T) {
	p := loadProject(t)
	var cfg struct {
		RuleFiles []string `yaml:"rule_files"`
	}
	b, err := os.ReadFile("prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	prom := p.Services["prometheus"]
	configFile := argValue(prom.Command, "--config.file=")
	if configFile == "" {
		t.Fatalf("the prometheus service's command %v has no --config.file=", prom.Command)
	}
	targets := []string{configFile}
	for _, f := range cfg.RuleFiles {
		// Prometheus reads a relative rule file next to its configuration file.
		if !path.IsAbs(f) {
			f = path.Join(path.Dir(configFile), f)
		}
		targets = append(targets, f)
	}
	for _, target := range targets {
		if mountedFile(prom, target) == "" {
			t.Errorf("prometheus reads %s, which is not mounted from the repository", target)
		}
	}
}

func argValue(args []string, prefix string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, prefix); ok {
			return v
		}
	}
	return ""
}

// TestDockerfile checks what the image must hold: Debian 12 stages, the ONNX Runtime library fetched through
// scripts/setup.sh (whose pinned checksum stays the only copy), a non-root user, the bundled model and sample.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	for _, want := range []string{
		"FROM golang:${GO_VERSION}-bookworm AS build",
		"FROM debian:bookworm-slim",
		"scripts/setup.sh --runtime",
		"COPY models/fashion-se.onnx ",
		"COPY samples/fashion.mp4 ",
		"libopencv-core406", "libopencv-imgproc406", "libopencv-imgcodecs406", "libopencv-videoio406", "libopencv-dnn406",
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if regexp.MustCompile(`\b[0-9a-f]{64}\b`).MatchString(df) {
		t.Error("Dockerfile holds a SHA-256; the ONNX Runtime checksum belongs to scripts/setup.sh only")
	}
	users := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindAllStringSubmatch(df, -1)
	if len(users) == 0 {
		t.Fatal("Dockerfile has no USER: the image would run as root")
	}
	if u := users[len(users)-1][1]; strings.HasPrefix(u, "root") || strings.HasPrefix(u, "0") {
		t.Errorf("the image runs as %s, want a non-root user", u)
	}
	// Every file the Dockerfile copies from the build context exists and is not excluded by .dockerignore.
	ignore, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?m)^COPY\s+(?:--chown=\S+\s+)?(\S+)\s`).FindAllStringSubmatch(df, -1) {
		src := m[1]
		if src == "." || strings.HasPrefix(src, "--") {
			continue
		}
		if _, err := os.Stat(filepath.Join(root, src)); err != nil {
			if src == bundledModel && os.IsNotExist(err) {
				// The model is an output of models/train/run_all.py, committed by its own work; until then the
				// image cannot be built, and this says so instead of failing every other package's CI.
				t.Logf("Dockerfile copies %s, which is not in the repository yet: `docker build` fails until it is", src)
				continue
			}
			t.Errorf("Dockerfile copies %s: %v", src, err)
		}
		for _, line := range strings.Split(string(ignore), "\n") {
			line = strings.TrimSpace(line)
			if line != "" && !strings.HasPrefix(line, "#") && strings.HasPrefix(src, strings.TrimSuffix(line, "/")) {
				t.Errorf("Dockerfile copies %s, which .dockerignore excludes (%s)", src, line)
			}
		}
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

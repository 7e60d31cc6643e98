package deploy

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sestream/sestream/internal/testfixtures"
)

// TestMain removes the sestream binary the tests build (once per test binary) when they are done.
func TestMain(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// build is the one sestream binary of this test binary, built on first use by sestreamBinary.
var build struct {
	once      sync.Once
	dir, path string
	err       error
}

// sestreamBinary builds ./cmd/sestream from the repository root once, into a temporary directory.
func sestreamBinary(t *testing.T) string {
	t.Helper()
	build.once.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "sestream-deploy-")
		if build.err != nil {
			return
		}
		abs, err := filepath.Abs(root)
		if err != nil {
			build.err = err
			return
		}
		build.path = filepath.Join(build.dir, "sestream")
		start := time.Now()
		cmd := exec.Command("go", "build", "-o", build.path, "./cmd/sestream")
		cmd.Dir = abs
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build -o %s ./cmd/sestream: %w\n%s", build.path, err, out)
		}
		t.Logf("built %s in %v", build.path, time.Since(start).Round(time.Millisecond))
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.path
}

// lookBinary returns the path of name on PATH or in one of dirs (Debian puts some servers in /usr/sbin, which
// is not on every user's PATH), or "".
func lookBinary(name string, dirs ...string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// needBinary returns the path of name, skipping the test with what to install when it is absent.
func needBinary(t *testing.T, name, pkg string) string {
	t.Helper()
	p := lookBinary(name, "/usr/bin", "/usr/sbin")
	if p == "" {
		t.Skipf("skipping: %s is not installed (Debian package %s; scripts/setup.sh installs it): not on PATH, in /usr/bin or in /usr/sbin", name, pkg)
	}
	return p
}

// process is a child process of a test. Its stdout and stderr go to a log file; when the test fails, the
// log's last lines are printed. The test stops it (SIGTERM, then SIGKILL) unless it was killed before.
type process struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed when the process has exited and been reaped
	err  error         // Wait's error, set before done is closed
}

// startProcess starts bin with args in dir (empty: the test's working directory).
func startProcess(t *testing.T, name, dir, bin string, args ...string) *process {
	t.Helper()
	log, err := os.CreateTemp(t.TempDir(), name+"-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &process{t: t, name: name, cmd: cmd, log: log.Name(), done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		log.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s (%s) log, last lines:\n%s", name, strings.Join(cmd.Args, " "), tail(p.log, 40))
		}
	})
	return p
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill ends the process at once with SIGKILL (its connections close, nothing is flushed) and reaps it.
func (p *process) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop asks the process to end with SIGTERM and kills it after 10 s.
func (p *process) stop() {
	if p.exited() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.t.Logf("%s did not end within 10s of SIGTERM: killed", p.name)
		p.kill()
	}
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// waitFor polls cond every 100 ms until it returns true or timeout passes; it fails the test on timeout
// with what, and stops early (failing) when p, if not nil, exits.
func waitFor(t *testing.T, what string, timeout time.Duration, p *process, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if p != nil && p.exited() {
			t.Fatalf("%s exited (%v) while waiting for %s", p.name, p.err, what)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// httpOK reports whether GET url answers 200.
func httpOK(url string) bool {
	resp, err := httpClient.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// loopback is host:port on 127.0.0.1.
func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// sestreamProcess is a `sestream run` of the binary the tests build.
type sestreamProcess struct {
	*process
	// Addr is its http.listen address (127.0.0.1:port): /metrics, /healthz, /readyz.
	Addr string
}

// startSestream runs `sestream run --config FILE` from the repository root (where it finds the bundled model
// and the ONNX Runtime library of scripts/setup.sh), FILE holding config plus an http.listen on a free
// loopback port; config must not set http. It waits until /healthz answers.
func startSestream(t *testing.T, config string) *sestreamProcess {
	t.Helper()
	return startSestreamOn(t, loopback(testfixtures.FreePort(t)), config)
}

// startSestreamOn is startSestream with http.listen at addr, for a test that points Prometheus at sestream
// before it starts.
func startSestreamOn(t *testing.T, addr, config string) *sestreamProcess {
	t.Helper()
	bin := sestreamBinary(t)
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "sestream.yaml")
	config = strings.TrimRight(config, "\n") + "\nhttp:\n  listen: " + addr + "\n"
	if err := os.WriteFile(file, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &sestreamProcess{process: startProcess(t, "sestream", abs, bin, "run", "--config", file), Addr: addr}
	waitFor(t, "sestream /healthz", 60*time.Second, p.process, func() bool { return httpOK("http://" + addr + "/healthz") })
	return p
}

// natsServer is Debian's nats-server run as a process on 127.0.0.1, which a test can kill and start again
// on the same port.
type natsServer struct {
	t    *testing.T
	bin  string
	port int
	proc *process
}

// startNATSServer starts nats-server on a free loopback port and waits until it accepts connections.
func startNATSServer(t *testing.T) *natsServer {
	t.Helper()
	s := &natsServer{t: t, bin: needBinary(t, "nats-server", "nats-server"), port: testfixtures.FreePort(t)}
	s.start()
	return s
}

// URL is the server's client URL.
func (s *natsServer) URL() string { return "nats://" + loopback(s.port) }

func (s *natsServer) start() {
	s.t.Helper()
	s.proc = startProcess(s.t, "nats-server", "", s.bin, "-a", "127.0.0.1", "-p", strconv.Itoa(s.port))
	waitFor(s.t, "nats-server accepting connections", 10*time.Second, s.proc, func() bool {
		c, err := net.DialTimeout("tcp", loopback(s.port), 200*time.Millisecond)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// kill ends the server with SIGKILL: clients see the connection drop.
func (s *natsServer) kill() { s.proc.kill() }

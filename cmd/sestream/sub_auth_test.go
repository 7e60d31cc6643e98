package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/sestream/sestream/internal/testfixtures"
	"github.com/sestream/sestream/stages/natspub"
)

// startAuthPublisher publishes to an external server with o's credentials.
func startAuthPublisher(t *testing.T, o natspub.Options) *natspub.Publisher {
	t.Helper()
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	o.FailIfUnreachable = true
	p, err := natspub.New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.Close(ctx)
	})
	return p
}

func writeTestFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// subAuthCase is one `sestream sub` against an authenticating server: ok, or the exit code and what stderr
// must say.
type subAuthCase struct {
	name string
	args []string
	code int
	want string // on stderr when code is not exitOK
	// leak must not appear on stderr (a secret).
	leak string
}

func runSubAuthCases(t *testing.T, p *natspub.Publisher, cases []subAuthCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runWhilePublishing(t, p, append([]string{"sub"}, tc.args...)...)
			t.Logf("exit %d, stderr: %s", code, errOut)
			if code != tc.code {
				t.Fatalf("exit code %d, want %d; stderr:\n%s", code, tc.code, errOut)
			}
			if tc.code == exitOK {
				if !strings.HasPrefix(out, "status test up") {
					t.Fatalf("output %q, want a status line", out)
				}
				return
			}
			if !strings.Contains(strings.ToLower(errOut), strings.ToLower(tc.want)) {
				t.Fatalf("stderr %q does not contain %q", errOut, tc.want)
			}
			if tc.leak != "" && strings.Contains(errOut, tc.leak) {
				t.Fatalf("stderr shows the secret %q: %s", tc.leak, errOut)
			}
		})
	}
}

func TestSubUserPassword(t *testing.T) {
	s := testfixtures.NATSServer(t, &server.Options{Username: "alice", Password: "s3cret-pw"})
	url := s.ClientURL()
	p := startAuthPublisher(t, natspub.Options{URLs: []string{url}, User: "alice", Password: "s3cret-pw"})
	dir := t.TempDir()
	cfgFile := writeTestFile(t, dir, "sestream.yaml", []byte("nats:\n  url: "+url+"\n  user: alice\n  password: s3cret-pw\n"))
	wrongCfg := writeTestFile(t, dir, "wrong.yaml", []byte("nats:\n  url: "+url+"\n  user: alice\n  password: wrong-pw-123\n"))
	status := []string{"--kind", "status", "--count", "1"}
	runSubAuthCases(t, p, []subAuthCase{
		{name: "flags", args: append([]string{"--nats", url, "--user", "alice", "--password", "s3cret-pw"}, status...), code: exitOK},
		{name: "config", args: append([]string{"--config", cfgFile}, status...), code: exitOK},
		{name: "config with the password from a flag", args: append([]string{"--config", wrongCfg, "--password", "s3cret-pw"}, status...), code: exitOK},
		{name: "wrong password", args: append([]string{"--nats", url, "--user", "alice", "--password", "wrong-pw-123"}, status...),
			code: exitFailure, want: "authorization violation", leak: "wrong-pw-123"},
		{name: "wrong password in config", args: append([]string{"--config", wrongCfg}, status...),
			code: exitFailure, want: "authorization violation", leak: "wrong-pw-123"},
		{name: "no credentials", args: append([]string{"--nats", url}, status...), code: exitFailure, want: "authorization violation"},
		{name: "password without user", args: append([]string{"--nats", url, "--password", "s3cret-pw"}, status...),
			code: exitUsage, want: "--user: --user and --password must be given together"},
	})
}

func TestSubToken(t *testing.T) {
	s := testfixtures.NATSServer(t, &server.Options{Authorization: "tok-abc"})
	url := s.ClientURL()
	p := startAuthPublisher(t, natspub.Options{URLs: []string{url}, Token: "tok-abc"})
	cfgFile := writeTestFile(t, t.TempDir(), "sestream.yaml", []byte("nats:\n  url: "+url+"\n  token: tok-abc\n"))
	status := []string{"--kind", "status", "--count", "1"}
	runSubAuthCases(t, p, []subAuthCase{
		{name: "flag", args: append([]string{"--nats", url, "--token", "tok-abc"}, status...), code: exitOK},
		{name: "config", args: append([]string{"--config", cfgFile}, status...), code: exitOK},
		{name: "wrong token", args: append([]string{"--nats", url, "--token", "tok-xyz"}, status...),
			code: exitFailure, want: "authorization violation", leak: "tok-xyz"},
		{name: "token and user", args: append([]string{"--nats", url, "--token", "tok-abc", "--user", "a", "--password", "b"}, status...),
			code: exitUsage, want: "--token: cannot be combined with --user/--password"},
	})
}

// testCerts writes a CA, a server certificate for 127.0.0.1 and a client certificate, all made here.
type testCerts struct{ ca, serverCert, serverKey, clientCert, clientKey string }

func newTestCerts(t *testing.T) testCerts {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sestream sub test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return writeTestFile(t, dir, name+".pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
			writeTestFile(t, dir, name+"-key.pem", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	}
	var c testCerts
	c.ca = writeTestFile(t, dir, "ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
	c.serverCert, c.serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	c.clientCert, c.clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return c
}

func TestSubTLS(t *testing.T) {
	c := newTestCerts(t)
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: c.serverCert, KeyFile: c.serverKey, CaFile: c.ca, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	s := testfixtures.NATSServer(t, &server.Options{TLS: true, TLSVerify: true, TLSConfig: tc, TLSTimeout: 2})
	url := strings.Replace(s.ClientURL(), "nats://", "tls://", 1)
	p := startAuthPublisher(t, natspub.Options{URLs: []string{url},
		TLS: natspub.TLSOptions{CAFile: c.ca, CertFile: c.clientCert, KeyFile: c.clientKey}})
	cfgFile := writeTestFile(t, t.TempDir(), "sestream.yaml", []byte("nats:\n  url: "+url+"\n  tls:\n    ca: "+c.ca+
		"\n    cert: "+c.clientCert+"\n    key: "+c.clientKey+"\n"))
	status := []string{"--kind", "status", "--count", "1"}
	runSubAuthCases(t, p, []subAuthCase{
		{name: "flags", args: append([]string{"--nats", url, "--tls-ca", c.ca, "--tls-cert", c.clientCert, "--tls-key", c.clientKey}, status...), code: exitOK},
		{name: "config", args: append([]string{"--config", cfgFile}, status...), code: exitOK},
		{name: "no client certificate", args: append([]string{"--nats", url, "--tls-ca", c.ca}, status...), code: exitFailure, want: "nats server"},
		{name: "key without cert", args: append([]string{"--nats", url, "--tls-ca", c.ca, "--tls-key", c.clientKey}, status...),
			code: exitUsage, want: "--tls-cert: --tls-cert and --tls-key must be given together"},
	})
}

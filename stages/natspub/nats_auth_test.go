package natspub

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/sestream/sestream/internal/testfixtures"
)

func TestNATSUserPassword(t *testing.T) {
	s := testfixtures.NATSServer(t, &server.Options{Username: "alice", Password: "s3cret-pw"})
	url := s.ClientURL()
	tests := []struct {
		name, user, pass string
		ok               bool
	}{
		{"right password", "alice", "s3cret-pw", true},
		{"wrong password", "alice", "wrong-pw-123", false},
		{"no credentials", "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			log, logs := natsTestLogger()
			o := Options{URLs: []string{url}, User: tc.user, Password: tc.pass, Logger: log}
			p, err := New(context.Background(), o)
			if tc.ok {
				if err != nil {
					t.Fatalf("right password refused: %v", err)
				}
				if err := p.PublishResult(context.Background(), natsTestResult("cam1", 1)); err != nil {
					t.Fatal(err)
				}
				closePublisher(t, p, 5*time.Second)
				if n := p.Stats().Total().Published; n != 1 {
					t.Fatalf("published %d", n)
				}
				return
			}
			if err == nil {
				p.Close(context.Background())
				t.Fatal("server accepted bad credentials")
			}
			msg := err.Error()
			if !strings.Contains(msg, "refused the connection") || !strings.Contains(strings.ToLower(msg), "authorization violation") {
				t.Errorf("unclear error: %v", err)
			}
			if tc.user != "" && !strings.Contains(msg, `user "alice"`) {
				t.Errorf("error does not name the user: %v", err)
			}
			if strings.Contains(msg+logs.String(), tc.pass) && tc.pass != "" {
				t.Errorf("password leaked into the error or log: %v\n%s", err, logs)
			}
		})
	}
}

func TestNATSToken(t *testing.T) {
	s := testfixtures.NATSServer(t, &server.Options{Authorization: "tok-abc"})
	for _, tc := range []struct {
		token string
		ok    bool
	}{{"tok-abc", true}, {"tok-xyz", false}} {
		log, _ := natsTestLogger()
		p, err := New(context.Background(), Options{URLs: []string{s.ClientURL()}, Token: tc.token, Logger: log})
		if (err == nil) != tc.ok {
			t.Fatalf("token %q: err %v", tc.token, err)
		}
		if err == nil {
			closePublisher(t, p, 5*time.Second)
		} else if strings.Contains(err.Error(), tc.token) {
			t.Fatalf("token leaked: %v", err)
		}
	}
}

// testPKI writes a CA, a server certificate for 127.0.0.1 and a client certificate, all made here.
type testPKI struct{ ca, serverCert, serverKey, clientCert, clientKey string }

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sestream test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
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
		keyDER, _ := x509.MarshalECPrivateKey(key)
		return natsWriteFile(t, dir, name+".pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
			natsWriteFile(t, dir, name+"-key.pem", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	}
	var p testPKI
	p.ca = natsWriteFile(t, dir, "ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
	p.serverCert, p.serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return p
}

func TestNATSTLS(t *testing.T) {
	pki := newTestPKI(t)
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: pki.serverCert, KeyFile: pki.serverKey, CaFile: pki.ca, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	s := testfixtures.NATSServer(t, &server.Options{TLS: true, TLSVerify: true, TLSConfig: tc, TLSTimeout: 2})
	url := strings.Replace(s.ClientURL(), "nats://", "tls://", 1)
	tests := []struct {
		name string
		tls  TLSOptions
		want string // "" = accepted
	}{
		{"ca and client cert", TLSOptions{CAFile: pki.ca, CertFile: pki.clientCert, KeyFile: pki.clientKey}, ""},
		{"no ca", TLSOptions{CertFile: pki.clientCert, KeyFile: pki.clientKey}, "TLS handshake failed"},
		{"no client cert", TLSOptions{CAFile: pki.ca}, "TLS handshake failed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			log, _ := natsTestLogger()
			p, err := New(context.Background(), Options{URLs: []string{url}, TLS: tc.tls, Logger: log})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("configured client refused: %v", err)
				}
				if err := p.PublishEvent(context.Background(), natsTestEvent()); err != nil {
					t.Fatal(err)
				}
				closePublisher(t, p, 5*time.Second)
				if n := p.Stats().Total().Published; n != 1 {
					t.Fatalf("published %d over TLS", n)
				}
				return
			}
			if err == nil {
				p.Close(context.Background())
				t.Fatal("connection without the right TLS files was accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

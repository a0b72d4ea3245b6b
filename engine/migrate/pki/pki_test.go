package pki

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crhook/crhook/engine/migrate"
)

var testNow = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func parseCert(t *testing.T, data []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "CERTIFICATE" {
		t.Fatalf("not a PEM certificate: %q", data)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTLSMaterialChains(t *testing.T) {
	m, err := NewTLSMaterial([]string{"10.250.13.2", "host-b.example"}, time.Hour, testNow)
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewTLSMaterial([]string{"10.250.13.2"}, time.Hour, testNow)
	if err != nil {
		t.Fatal(err)
	}
	ca := parseCert(t, m.CACert)
	if !ca.IsCA || !ca.MaxPathLenZero {
		t.Error("the migration CA must be a CA that signs leaves only")
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	for _, tt := range []struct {
		name  string
		cert  []byte
		usage x509.ExtKeyUsage
		pool  *x509.CertPool
		host  string
		ok    bool
	}{
		{"server for its address", m.ServerCert, x509.ExtKeyUsageServerAuth, pool, "10.250.13.2", true},
		{"server for its name", m.ServerCert, x509.ExtKeyUsageServerAuth, pool, "host-b.example", true},
		{"server for another address", m.ServerCert, x509.ExtKeyUsageServerAuth, pool, "10.250.13.1", false},
		{"client names the server's address (CRIU checks it)", m.ClientCert, x509.ExtKeyUsageClientAuth, pool, "10.250.13.2", true},
		{"client cert used as a server", m.ClientCert, x509.ExtKeyUsageServerAuth, pool, "", false},
		{"another migration's server", other.ServerCert, x509.ExtKeyUsageServerAuth, pool, "10.250.13.2", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := parseCert(t, tt.cert)
			if c.IsCA {
				t.Error("a leaf certificate is a CA")
			}
			_, err := c.Verify(x509.VerifyOptions{Roots: tt.pool, DNSName: tt.host, KeyUsages: []x509.ExtKeyUsage{tt.usage}, CurrentTime: testNow})
			if (err == nil) != tt.ok {
				t.Fatalf("verify: %v, want ok=%v", err, tt.ok)
			}
		})
	}
	for _, when := range []time.Time{testNow.Add(-clockSkew - time.Second), testNow.Add(time.Hour + time.Second)} {
		if _, err := parseCert(t, m.ServerCert).Verify(x509.VerifyOptions{Roots: pool, CurrentTime: when}); err == nil {
			t.Errorf("server certificate valid at %v, outside its window", when)
		}
	}
}

// TestTLSMaterialHandshake: a page server that requires a client
// certificate of this migration's CA lets in this migration's client
// and nobody else.
func TestTLSMaterialHandshake(t *testing.T) {
	m, err := NewTLSMaterial([]string{"127.0.0.1"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewTLSMaterial([]string{"127.0.0.1"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(m.CACert)
	serverPair, err := tls.X509KeyPair(m.ServerCert, m.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	pair := func(cert, key []byte) []tls.Certificate {
		p, err := tls.X509KeyPair(cert, key)
		if err != nil {
			t.Fatal(err)
		}
		return []tls.Certificate{p}
	}
	for _, tt := range []struct {
		name  string
		certs []tls.Certificate
		ok    bool
	}{
		{"this migration's client", pair(m.ClientCert, m.ClientKey), true},
		{"no certificate", nil, false},
		{"another migration's client", pair(other.ClientCert, other.ClientKey), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, b := net.Pipe()
			defer func() { _ = a.Close(); _ = b.Close() }()
			srv := tls.Server(a, &tls.Config{Certificates: []tls.Certificate{serverPair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert})
			cli := tls.Client(b, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", Certificates: tt.certs})
			done := make(chan error, 1)
			go func() { done <- srv.Handshake(); _ = a.Close() }()
			cerr := cli.Handshake()
			if cerr == nil {
				// TLS 1.3: the client learns of a refusal on its first read.
				_ = cli.SetReadDeadline(time.Now().Add(2 * time.Second))
				_, cerr = cli.Read(make([]byte, 1))
				if errors.Is(cerr, os.ErrDeadlineExceeded) {
					cerr = nil
				}
			}
			serr := <-done
			if (serr == nil) != tt.ok {
				t.Fatalf("server handshake: %v, want ok=%v (client: %v)", serr, tt.ok, cerr)
			}
		})
	}
}

func TestTLSWriteFiles(t *testing.T) {
	m, err := NewTLSMaterial([]string{"10.250.13.1"}, time.Hour, testNow)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "m-1", "tls")
	paths, err := m.WriteFiles(dir, RoleClient)
	if err != nil {
		t.Fatal(err)
	}
	want := migrate.TLSPaths{CACert: dir + "/ca.pem", Cert: dir + "/client.pem", Key: dir + "/client-key.pem"}
	if paths != want {
		t.Fatalf("paths = %+v, want %+v", paths, want)
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %v, %v: want 0700", fi.Mode(), err)
	}
	for _, p := range []string{paths.CACert, paths.Cert, paths.Key} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, %v: want 0600", p, fi.Mode(), err)
		}
	}
	if got, _ := os.ReadFile(paths.Key); string(got) != string(m.ClientKey) {
		t.Error("client key file does not hold the client key")
	}
	// The material is made per migration: never overwrite, never follow.
	if _, err := m.WriteFiles(dir, RoleClient); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second write into the same dir: %v, want ErrExist", err)
	}
	linkDir := filepath.Join(t.TempDir(), "l")
	if err := os.Mkdir(linkDir, 0o700); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "target")
	if err := os.Symlink(target, filepath.Join(linkDir, "ca.pem")); err != nil {
		t.Fatal(err)
	}
	if _, err := m.WriteFiles(linkDir, RoleServer); err == nil {
		t.Error("wrote through a planted symlink")
	}
	if _, err := os.Lstat(target); err == nil {
		t.Error("the symlink's target was created")
	}
	open := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(open, 0o750); err != nil {
		t.Fatal(err)
	}
	if _, err := m.WriteFiles(open, RoleServer); err == nil || !strings.Contains(err.Error(), "0700") {
		t.Errorf("group-readable dir accepted: %v", err)
	}
	if _, err := m.WriteFiles("relative/dir", RoleServer); err == nil {
		t.Error("relative dir accepted")
	}
}

func TestNewTLSMaterialRejects(t *testing.T) {
	if _, err := NewTLSMaterial(nil, time.Hour, testNow); err == nil {
		t.Error("no hosts accepted")
	}
	if _, err := NewTLSMaterial([]string{"10.0.0.1"}, 0, testNow); err == nil {
		t.Error("zero validity accepted")
	}
}

//go:build e2e

package migrate

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crhook/crhook/engine/migrate"
	"github.com/crhook/crhook/engine/migrate/pki"
)

// TestCRIUPageServerTLS checks engine/migrate's TLS material against the
// real CRIU: a page server started with the server's files serves a real
// `criu dump` that has the client's files, and refuses a client without
// a certificate or with another migration's. All on loopback.
func TestCRIUPageServerTLS(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root: criu dump")
	}
	if _, err := exec.LookPath("criu"); err != nil {
		t.Skip("criu not installed: run tests/setup-host.sh")
	}
	m, err := pki.NewTLSMaterial([]string{"127.0.0.1"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.NewTLSMaterial([]string{"127.0.0.1"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	srv, err := m.WriteFiles(filepath.Join(dir, "server"), pki.RoleServer)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := m.WriteFiles(filepath.Join(dir, "client"), pki.RoleClient)
	if err != nil {
		t.Fatal(err)
	}
	tlsFlags := func(p migrate.TLSPaths) []string {
		return []string{"--tls", "--tls-cacert", p.CACert, "--tls-cert", p.Cert, "--tls-key", p.Key}
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(m.CACert)
	otherPair, err := tls.X509KeyPair(other.ClientCert, other.ClientKey)
	if err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		name  string
		certs []tls.Certificate
	}{
		{"no client certificate", nil},
		{"another migration's client certificate", []tls.Certificate{otherPair}},
	} {
		t.Run("refuses "+tt.name, func(t *testing.T) {
			ps := startPageServer(t, tlsFlags(srv))
			conn, err := net.DialTimeout("tcp", ps.addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = conn.Close() }()
			c := tls.Client(conn, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", Certificates: tt.certs})
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			herr := c.Handshake()
			var n int
			if herr == nil {
				// TLS 1.3 tells the client of a refusal on its first read.
				n, herr = c.Read(make([]byte, 64))
			}
			if herr == nil || n > 0 {
				t.Fatalf("the page server talked to a client with %s (read %d bytes)", tt.name, n)
			}
			if err := ps.wait(t); err == nil {
				t.Fatalf("criu page-server exited 0 after a client with %s", tt.name)
			}
			if pages, _ := filepath.Glob(filepath.Join(ps.dir, "pages-*.img")); len(pages) > 0 {
				t.Fatalf("page server wrote %v for a refused client", pages)
			}
			t.Logf("refused (%v); page-server log: %s", herr, ps.logErrors())
		})
	}

	t.Run("serves a criu dump with the client certificate", func(t *testing.T) {
		ps := startPageServer(t, tlsFlags(srv))
		victim := exec.Command("sleep", "1000")
		victim.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := victim.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = victim.Process.Kill(); _ = victim.Wait() })
		local := t.TempDir()
		args := append([]string{"dump", "-t", strconv.Itoa(victim.Process.Pid), "--leave-running", "-D", local, "-o", "dump.log", "-v4",
			"--page-server", "--address", "127.0.0.1", "--port", ps.port}, tlsFlags(cli)...)
		if out, err := exec.Command("criu", args...).CombinedOutput(); err != nil {
			t.Fatalf("criu dump to the TLS page server: %v %s\n%s", err, out, logErrors(local, "dump.log"))
		}
		if err := ps.wait(t); err != nil {
			t.Fatalf("criu page-server: %v\n%s", err, ps.logErrors())
		}
		pages, _ := filepath.Glob(filepath.Join(ps.dir, "pages-*.img"))
		var size int64
		for _, p := range pages {
			if fi, err := os.Stat(p); err == nil {
				size += fi.Size()
			}
		}
		if size == 0 {
			t.Fatalf("no pages arrived at the page server (%v)", pages)
		}
		t.Logf("%d bytes of pages over TLS", size)
	})
}

type pageServer struct {
	cmd       *exec.Cmd
	done      <-chan error
	dir, port string
	addr      string
	out       *strings.Builder
}

// startPageServer runs `criu page-server` on 127.0.0.1 and a free port
// and waits until it listens, on that address only: CRIU must honour
// --address for a page server (it does not for a lazy dump's).
func startPageServer(t *testing.T, extra []string) *pageServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	_ = l.Close()
	ps := &pageServer{dir: t.TempDir(), port: port, addr: "127.0.0.1:" + port, out: &strings.Builder{}}
	args := append([]string{"page-server", "--address", "127.0.0.1", "--port", port, "-D", ps.dir, "-o", "page-server.log", "-v4"}, extra...)
	ps.cmd = exec.Command("criu", args...)
	ps.cmd.Stdout, ps.cmd.Stderr = ps.out, ps.out
	if err := ps.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ps.done = waitChan(ps.cmd)
	t.Cleanup(func() { _ = ps.cmd.Process.Kill() })
	hexPort := fmt.Sprintf(":%04X ", l.Addr().(*net.TCPAddr).Port)
	eventually(t, 10*time.Second, "criu page-server listening on "+ps.addr, func() bool {
		tcp, _ := os.ReadFile("/proc/net/tcp")
		for _, line := range strings.Split(string(tcp), "\n") {
			f := strings.Fields(line)
			if len(f) > 3 && f[3] == "0A" && strings.HasSuffix(f[1]+" ", hexPort) {
				if f[1] != "0100007F"+strings.TrimSpace(hexPort) {
					t.Fatalf("criu page-server --address 127.0.0.1 listens on %s", f[1])
				}
				return true
			}
		}
		return false
	})
	return ps
}

func (ps *pageServer) wait(t *testing.T) error {
	t.Helper()
	return waitWithin(t, ps.done, 30*time.Second, "criu page-server")
}

func (ps *pageServer) logErrors() string {
	return ps.out.String() + logErrors(ps.dir, "page-server.log")
}

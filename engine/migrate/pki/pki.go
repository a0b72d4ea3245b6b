package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/crhook/crhook/engine/migrate"
)

// TLSMaterial is one migration's TLS material for CRIU's page server, PEM
// encoded: a CA made for this migration only, a certificate for the page
// server and one for its client, both signed by that CA. The CA's key is
// dropped once both are signed, so nobody, crhook included, can mint a
// third certificate this migration's peers would accept.
type TLSMaterial struct {
	CACert     []byte
	ServerCert []byte
	ServerKey  []byte
	ClientCert []byte
	ClientKey  []byte
}

// Role says which end of the page-server connection a host is.
type Role int

const (
	// RoleServer runs the page server (the source for lazy, the
	// destination for stream and precopy).
	RoleServer Role = iota
	// RoleClient connects to it (criu lazy-pages, or the dumping CRIU).
	RoleClient
)

func (r Role) String() string {
	if r == RoleServer {
		return "server"
	}
	return "client"
}

// clockSkew is how far a peer's clock may be behind ours and still
// accept the certificates.
const clockSkew = 5 * time.Minute

// NewTLSMaterial makes the material for one migration whose page server
// is reached at hosts (IP addresses or DNS names), valid from now for
// validity.
//
// Both certificates name hosts: CRIU checks the peer's certificate
// against its own --address on both ends (tls_x509_verify_peer_cert
// passes opts.addr as the host name to gnutls), so a page server started
// with --address A accepts only a client whose certificate names A too.
func NewTLSMaterial(hosts []string, validity time.Duration, now time.Time) (*TLSMaterial, error) {
	if len(hosts) == 0 {
		return nil, errors.New("make migration TLS material: no page-server host to name in the certificates")
	}
	if validity <= 0 {
		return nil, fmt.Errorf("make migration TLS material: validity %v is not positive", validity)
	}
	var ips []net.IP
	var names []string
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else if h != "" {
			names = append(names, h)
		}
	}
	notBefore, notAfter := now.Add(-clockSkew), now.Add(validity)

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("make migration CA key: %w", err)
	}
	caTmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "crhook migration CA"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	if caTmpl.SerialNumber, err = serial(); err != nil {
		return nil, err
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("sign migration CA: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("parse migration CA: %w", err)
	}
	m := &TLSMaterial{CACert: pemBlock("CERTIFICATE", caDER)}
	for _, leaf := range []struct {
		role      Role
		usage     x509.ExtKeyUsage
		cert, key *[]byte
	}{
		{RoleServer, x509.ExtKeyUsageServerAuth, &m.ServerCert, &m.ServerKey},
		{RoleClient, x509.ExtKeyUsageClientAuth, &m.ClientCert, &m.ClientKey},
	} {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("make migration %s key: %w", leaf.role, err)
		}
		tmpl := &x509.Certificate{
			Subject:     pkix.Name{CommonName: "crhook migration " + leaf.role.String()},
			NotBefore:   notBefore,
			NotAfter:    notAfter,
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{leaf.usage},
			IPAddresses: ips,
			DNSNames:    names,
		}
		if tmpl.SerialNumber, err = serial(); err != nil {
			return nil, err
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return nil, fmt.Errorf("sign migration %s certificate: %w", leaf.role, err)
		}
		pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, fmt.Errorf("encode migration %s key: %w", leaf.role, err)
		}
		*leaf.cert, *leaf.key = pemBlock("CERTIFICATE", der), pemBlock("PRIVATE KEY", pkcs8)
	}
	return m, nil
}

func serial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("make certificate serial: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

func pemBlock(kind string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der})
}

// WriteFiles writes what one end needs, the CA certificate and its own
// certificate and key, into dir, and returns the paths for the plan and
// CRIU's --tls-cacert, --tls-cert and --tls-key. dir is created 0700 if
// missing and must then be a directory only its owner can enter; the
// files are new (O_EXCL, O_NOFOLLOW: a file or link already there is an
// error, never followed or reused) and 0600.
func (m *TLSMaterial) WriteFiles(dir string, role Role) (migrate.TLSPaths, error) {
	if !filepath.IsAbs(dir) {
		return migrate.TLSPaths{}, fmt.Errorf("write migration TLS files: directory %q is not absolute", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return migrate.TLSPaths{}, fmt.Errorf("create migration TLS directory %q: %w", dir, err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return migrate.TLSPaths{}, fmt.Errorf("check migration TLS directory %q: %w", dir, err)
	}
	if !fi.IsDir() || fi.Mode().Perm()&0o077 != 0 {
		return migrate.TLSPaths{}, fmt.Errorf("migration TLS directory %q is %v: want a directory with mode 0700 (remove it and retry)", dir, fi.Mode())
	}
	cert, key := m.ServerCert, m.ServerKey
	if role == RoleClient {
		cert, key = m.ClientCert, m.ClientKey
	}
	paths := migrate.TLSPaths{
		CACert: filepath.Join(dir, "ca.pem"),
		Cert:   filepath.Join(dir, role.String()+".pem"),
		Key:    filepath.Join(dir, role.String()+"-key.pem"),
	}
	for _, f := range []struct {
		path string
		data []byte
	}{{paths.CACert, m.CACert}, {paths.Cert, cert}, {paths.Key, key}} {
		if len(f.data) == 0 {
			return migrate.TLSPaths{}, fmt.Errorf("write %q: no %s material", f.path, role)
		}
		if err := writeNew(f.path, f.data); err != nil {
			return migrate.TLSPaths{}, err
		}
	}
	return paths, nil
}

// writeNew creates path, which must not exist, with data and mode 0600.
func writeNew(path string, data []byte) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("write %q: it already exists; TLS material is made fresh for each migration: %w", path, err)
		}
		return fmt.Errorf("write %q: %w", path, err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close %q: %w", path, cerr)
		}
		if err != nil {
			_ = os.Remove(path)
		}
	}()
	// The umask may have cleared bits but never adds any; set 0600 anyway
	// so the mode does not depend on it.
	if err = f.Chmod(0o600); err != nil {
		return fmt.Errorf("chmod %q: %w", path, err)
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write %q: %w", path, err)
	}
	return f.Sync()
}

package web

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Names of the self-signed certificate's files in the state directory.
const (
	SelfSignedCert = "web-cert.pem"
	SelfSignedKey  = "web-key.pem"
)

// LoadCertificate returns the monitor's certificate: certFile and keyFile
// when given, else the self-signed one kept in stateDir, made on first use
// (ECDSA P-256, valid 10 years, for the listen address, localhost and the
// host name). generated reports that a new one was made.
func LoadCertificate(certFile, keyFile, stateDir, listen string) (cert tls.Certificate, generated bool, err error) {
	if certFile != "" {
		cert, err = tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return cert, false, fmt.Errorf("web: loading cert_file %s / key_file %s: %w", certFile, keyFile, err)
		}
		return cert, false, nil
	}
	cp, kp := filepath.Join(stateDir, SelfSignedCert), filepath.Join(stateDir, SelfSignedKey)
	if cert, err = tls.LoadX509KeyPair(cp, kp); err == nil {
		if leaf, perr := x509.ParseCertificate(cert.Certificate[0]); perr == nil && time.Now().Before(leaf.NotAfter) {
			return cert, false, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return cert, false, fmt.Errorf("web: self-signed certificate in %s is unreadable (delete %s and %s to make a new one): %w",
			stateDir, SelfSignedCert, SelfSignedKey, err)
	}
	certPEM, keyPEM, err := selfSigned(listen)
	if err != nil {
		return cert, false, err
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return cert, false, fmt.Errorf("web: state_dir: %w", err)
	}
	if err := writeAtomic(kp, keyPEM, 0o600); err != nil {
		return cert, false, err
	}
	if err := writeAtomic(cp, certPEM, 0o644); err != nil {
		return cert, false, err
	}
	cert, err = tls.X509KeyPair(certPEM, keyPEM)
	return cert, true, err
}

// Fingerprint returns the SHA-256 fingerprint of cert's leaf, as browsers
// show it, for the operator to compare.
func Fingerprint(cert tls.Certificate) string {
	if len(cert.Certificate) == 0 {
		return ""
	}
	sum := sha256.Sum256(cert.Certificate[0])
	return hex.EncodeToString(sum[:])
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return fmt.Errorf("web: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("web: %w", err)
	}
	return nil
}

func selfSigned(listen string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	host, _ := os.Hostname()
	tpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "ulvs monitor " + host, Organization: []string{"ulvs"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if host != "" {
		tpl.DNSNames = append(tpl.DNSNames, host)
	}
	if h, _, err := net.SplitHostPort(listen); err == nil {
		if a, err := netip.ParseAddr(h); err == nil && !a.IsUnspecified() && !a.IsLoopback() {
			tpl.IPAddresses = append(tpl.IPAddresses, a.AsSlice())
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}

// tlsOrPlain is a listener that answers TLS on its connections and hands
// plain-text connections (a client that typed http://) over unencrypted,
// so that the server can answer them with a redirect to https:// and
// nothing else. It tells them apart by the first byte: a TLS handshake
// record starts with 0x16. The peek runs in a goroutine per connection
// with a deadline, so a silent client does not block Accept.
type tlsOrPlain struct {
	net.Listener
	cfg    *tls.Config
	conns  chan net.Conn
	done   chan struct{}
	once   sync.Once
	cancel context.CancelFunc
}

const (
	peekTimeout = 10 * time.Second
	// maxPending bounds the connections whose first byte is awaited; more
	// are closed at once (a flood of silent connections costs no more).
	maxPending = 256
)

func newTLSOrPlain(l net.Listener, cfg *tls.Config) *tlsOrPlain {
	ctx, cancel := context.WithCancel(context.Background())
	t := &tlsOrPlain{Listener: l, cfg: cfg, conns: make(chan net.Conn), done: make(chan struct{}), cancel: cancel}
	go t.loop(ctx)
	return t
}

func (t *tlsOrPlain) loop(ctx context.Context) {
	defer close(t.done)
	pending := make(chan struct{}, maxPending)
	for {
		c, err := t.Listener.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		select {
		case pending <- struct{}{}:
		default:
			c.Close()
			continue
		}
		go func() {
			defer func() { <-pending }()
			_ = c.SetReadDeadline(time.Now().Add(peekTimeout))
			br := bufio.NewReaderSize(c, 1024)
			b, err := br.Peek(1)
			_ = c.SetReadDeadline(time.Time{})
			if err != nil {
				c.Close()
				return
			}
			var out net.Conn = &peekedConn{Conn: c, r: br}
			if b[0] == 0x16 {
				out = tls.Server(out, t.cfg)
			}
			select {
			case t.conns <- out:
			case <-ctx.Done():
				c.Close()
			}
		}()
	}
}

func (t *tlsOrPlain) Accept() (net.Conn, error) {
	select {
	case c := <-t.conns:
		return c, nil
	case <-t.done:
		return nil, net.ErrClosed
	}
}

func (t *tlsOrPlain) Close() error {
	t.once.Do(t.cancel)
	return t.Listener.Close()
}

type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (p *peekedConn) Read(b []byte) (int, error) { return p.r.Read(b) }

package healthcheck

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"time"
)

// maxBody bounds the body an http check reads.
const maxBody = 1 << 20

func loadCAFile(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate found", path)
	}
	return pool, nil
}

// tlsConfig builds the client TLS configuration of an https or tls check.
// host is the HTTP host (may be empty).
func tlsConfig(c *Config, host string) (*tls.Config, error) {
	cfg := &tls.Config{InsecureSkipVerify: !c.VerifyTLS}
	cfg.ServerName = c.SNI
	if cfg.ServerName == "" && host != "" {
		h := host
		if hh, _, err := net.SplitHostPort(host); err == nil {
			h = hh
		}
		if _, err := netip.ParseAddr(h); err != nil {
			cfg.ServerName = h
		}
	}
	if c.CAFile != "" {
		pool, err := loadCAFile(c.CAFile)
		if err != nil {
			return nil, cfgErr("ca_file", "%v", err)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// httpChecker is the http and https check: one GET on a fresh connection.
type httpChecker struct {
	client    *http.Client
	transport *http.Transport
	url       string
	host      string
	status    []int
	bodyRE    *regexp.Regexp
	digest    []byte
	timeout   time.Duration
}

func newHTTPChecker(s *Spec) (checker, error) {
	c := &s.Config
	addr := s.target()
	host := c.Host
	if host == "" {
		host = addr.String()
		if addr.Port() == 80 && c.Type == TypeHTTP || addr.Port() == 443 && c.Type == TypeHTTPS {
			host = addr.Addr().String()
			if addr.Addr().Is6() {
				host = "[" + host + "]"
			}
		}
	}
	h := &httpChecker{host: host, status: c.ExpectStatus, timeout: c.Timeout}
	scheme := "http"
	if c.Type == TypeHTTPS {
		scheme = "https"
	}
	h.url = scheme + "://" + host + c.Path
	if c.BodyRegex != "" {
		re, err := regexp.Compile(c.BodyRegex)
		if err != nil {
			return nil, cfgErr("body_regex", "%v", err)
		}
		h.bodyRE = re
	}
	if c.BodySHA256 != "" {
		d, err := hex.DecodeString(c.BodySHA256)
		if err != nil {
			return nil, cfgErr("body_sha256", "%v", err)
		}
		h.digest = d
	}
	var d net.Dialer
	dialAddr := addr.String()
	h.transport = &http.Transport{
		// Every probe opens its own connection, as keepalived's and
		// HAProxy's checks do: the check measures that the server accepts
		// new work, and no idle connection outlives the probe.
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", dialAddr)
		},
		DisableCompression: true,
		Proxy:              nil,
	}
	if c.Type == TypeHTTPS {
		tc, err := tlsConfig(c, host)
		if err != nil {
			return nil, err
		}
		h.transport.TLSClientConfig = tc
	}
	h.client = &http.Client{
		Transport:     h.transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return h, nil
}

func (h *httpChecker) close() { h.transport.CloseIdleConnections() }

func (h *httpChecker) check(ctx context.Context) Result {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url, nil)
	if err != nil {
		return failResult(err.Error())
	}
	req.Host = h.host
	req.Header.Set("User-Agent", "ulvs-healthcheck")
	resp, err := h.client.Do(req)
	if err != nil {
		return failErr(err, h.timeout, false)
	}
	defer resp.Body.Close()
	var notAfter time.Time
	if resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
		notAfter = resp.TLS.PeerCertificates[0].NotAfter
	}
	res := h.judge(ctx, resp)
	res.CertNotAfter = notAfter
	return res
}

func (h *httpChecker) judge(ctx context.Context, resp *http.Response) Result {
	if !slices.Contains(h.status, resp.StatusCode) {
		return failResult(fmt.Sprintf("status %d", resp.StatusCode))
	}
	if h.bodyRE == nil && h.digest == nil {
		return okResult(fmt.Sprintf("status %d", resp.StatusCode))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return failResult("reading body: " + Describe(ctxErr(ctx, err), h.timeout, false))
	}
	if len(body) > maxBody {
		return failResult(fmt.Sprintf("body longer than %d bytes", maxBody))
	}
	if h.bodyRE != nil && !h.bodyRE.Match(body) {
		return failResult("body does not match regex")
	}
	if h.digest != nil {
		sum := sha256.Sum256(body)
		if string(sum[:]) != string(h.digest) {
			return failResult("body digest mismatch: sha256 " + hex.EncodeToString(sum[:]))
		}
	}
	return okResult(fmt.Sprintf("status %d, body ok", resp.StatusCode))
}

// tlsChecker is the tls check: a TLS handshake succeeds.
type tlsChecker struct {
	addr    netip.AddrPort
	cfg     *tls.Config
	timeout time.Duration
}

func newTLSChecker(s *Spec) (checker, error) {
	cfg, err := tlsConfig(&s.Config, "")
	if err != nil {
		return nil, err
	}
	return &tlsChecker{addr: s.target(), cfg: cfg, timeout: s.Config.Timeout}, nil
}

func (t *tlsChecker) check(ctx context.Context) Result {
	d := tls.Dialer{Config: t.cfg}
	conn, err := d.DialContext(ctx, "tcp", t.addr.String())
	if err != nil {
		return failErr(err, t.timeout, false)
	}
	defer conn.Close()
	st := conn.(*tls.Conn).ConnectionState()
	res := okResult("handshake ok, " + tls.VersionName(st.Version))
	if len(st.PeerCertificates) > 0 {
		leaf := st.PeerCertificates[0]
		res.CertNotAfter = leaf.NotAfter
		if !t.cfg.InsecureSkipVerify {
			return res
		}
		// Without verification, still fail a certificate that has already
		// expired or is not yet valid: the clients will reject it.
		now := time.Now()
		if now.After(leaf.NotAfter) {
			return failResult("certificate expired at " + leaf.NotAfter.UTC().Format(time.RFC3339))
		}
		if now.Before(leaf.NotBefore) {
			return failResult("certificate not valid before " + leaf.NotBefore.UTC().Format(time.RFC3339))
		}
	}
	return res
}

package config

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ulvs/ulvs/healthcheck"
)

// Health checks and sorry servers in the configuration.
//
// A virtual service's [virtual_server.health_check] table applies to each of
// its real servers; a real server's own [virtual_server.real_server.health_check]
// table overrides it. An override that sets `type` replaces the virtual
// server's table whole; one without `type` is merged over it key by key (so
// `interval = "5s"` alone changes only the interval of that real server's
// check). Both are stored normalised (healthcheck.Config.Normalize), so
// that configurations meaning the same checks compare equal.
//
// Health checks and sorry servers do not change the data path by
// themselves: Diff ignores them (the control plane's health overlay turns
// them into data-path operations). Equal compares them.

// healthKeys are the TOML keys of healthcheck.Config, from its toml tags.
var healthKeys = func() map[string]reflect.StructField {
	m := map[string]reflect.StructField{}
	t := reflect.TypeFor[healthcheck.Config]()
	for i := range t.NumField() {
		f := t.Field(i)
		if tag := f.Tag.Get("toml"); tag != "" {
			m[tag] = f
		}
	}
	return m
}()

func init() {
	for _, p := range []string{"virtual_server.health_check", "virtual_server.real_server.health_check"} {
		schema[p] = true
		for k := range healthKeys {
			schema[p+"."+k] = true
		}
	}
	schema["virtual_server.sorry_server"] = true
	schema["virtual_server.sorry_method"] = true
	schema["director.health_max_in_flight"] = true
}

// freeForm reports whether plain is a key whose sub-keys are the user's
// (the env table of an exec check).
func freeForm(plain string) bool {
	return strings.HasPrefix(plain, "virtual_server.health_check.env.") ||
		strings.HasPrefix(plain, "virtual_server.real_server.health_check.env.")
}

// decodeHealth sets the keys of m on dst, reporting each type error under
// prefix.key. Unknown keys are left to the schema check.
func decodeHealth(l *errList, prefix string, m map[string]any, dst *healthcheck.Config) {
	rv := reflect.ValueOf(dst).Elem()
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := m[k]
		f, ok := healthKeys[k]
		if !ok {
			continue
		}
		key := prefix + "." + k
		fv := rv.FieldByIndex(f.Index)
		switch {
		case f.Type == reflect.TypeFor[time.Duration]():
			var d time.Duration
			n := len(*l)
			getDuration(l, key, v, &d)
			if len(*l) == n {
				fv.SetInt(int64(d))
			}
		case f.Type.Kind() == reflect.String:
			var s string
			if getString(l, key, v, &s) {
				fv.SetString(s)
			}
		case f.Type.Kind() == reflect.Int:
			var n int
			if getInt(l, key, v, &n) {
				fv.SetInt(int64(n))
			}
		case f.Type.Kind() == reflect.Bool:
			b, ok := v.(bool)
			if !ok {
				l.add(key, ErrInvalid, "want true or false, not %s", tomlType(v))
				continue
			}
			fv.SetBool(b)
		case f.Type.Kind() == reflect.Float64:
			switch x := v.(type) {
			case float64:
				fv.SetFloat(x)
			case int64:
				fv.SetFloat(float64(x))
			default:
				l.add(key, ErrInvalid, "want a number, not %s", tomlType(v))
			}
		case f.Type == reflect.TypeFor[[]int]():
			arr, ok := v.([]any)
			if !ok {
				l.add(key, ErrInvalid, "want an array of integers, not %s", tomlType(v))
				continue
			}
			out := make([]int, 0, len(arr))
			for j, e := range arr {
				n, ok := e.(int64)
				if !ok {
					l.add(fmt.Sprintf("%s[%d]", key, j), ErrInvalid, "want an integer, not %s", tomlType(e))
					continue
				}
				out = append(out, int(n))
			}
			fv.Set(reflect.ValueOf(out))
		case f.Type == reflect.TypeFor[[]string]():
			arr, ok := v.([]any)
			if !ok {
				l.add(key, ErrInvalid, "want an array of strings, not %s", tomlType(v))
				continue
			}
			out := make([]string, 0, len(arr))
			for j, e := range arr {
				s, ok := e.(string)
				if !ok {
					l.add(fmt.Sprintf("%s[%d]", key, j), ErrInvalid, "want a string, not %s", tomlType(e))
					continue
				}
				out = append(out, s)
			}
			fv.Set(reflect.ValueOf(out))
		case f.Type == reflect.TypeFor[map[string]string]():
			tm, ok := v.(map[string]any)
			if !ok {
				l.add(key, ErrInvalid, "want a table of strings, not %s", tomlType(v))
				continue
			}
			out := make(map[string]string, len(tm))
			for ek, ev := range tm {
				s, ok := ev.(string)
				if !ok {
					l.add(key+"."+ek, ErrInvalid, "want a string, not %s", tomlType(ev))
					continue
				}
				out[ek] = s
			}
			fv.Set(reflect.ValueOf(out))
		}
	}
}

// healthTable returns v as a health_check table.
func healthTable(l *errList, key string, v any) (map[string]any, bool) {
	if v == nil {
		return nil, false
	}
	m, ok := v.(map[string]any)
	if !ok {
		l.add(key, ErrInvalid, "want a table, not %s", tomlType(v))
		return nil, false
	}
	return m, true
}

// CloneHealth returns a deep copy of h (nil for nil).
func CloneHealth(h *healthcheck.Config) *healthcheck.Config {
	if h == nil {
		return nil
	}
	n := *h
	n.ExpectStatus = slices.Clone(h.ExpectStatus)
	n.Args = slices.Clone(h.Args)
	if h.Env != nil {
		n.Env = make(map[string]string, len(h.Env))
		for k, v := range h.Env {
			n.Env[k] = v
		}
	}
	return &n
}

// normHealth returns a normalised copy of h.
func normHealth(h *healthcheck.Config) *healthcheck.Config {
	n := CloneHealth(h).Normalize()
	return &n
}

// checkHealth validates h under key p (".health_check" appended).
func checkHealth(l *errList, p string, h *healthcheck.Config) {
	if h == nil {
		return
	}
	if err := h.Validate(); err != nil {
		var ce *healthcheck.ConfigError
		if errors.As(err, &ce) {
			l.add(p+".health_check."+ce.Key, ErrInvalid, "%s", ce.Msg)
		} else {
			l.add(p+".health_check", ErrInvalid, "%v", err)
		}
	}
}

// HealthFor returns the health check that applies to rs of vs (its own
// override, else the virtual server's), or nil for none.
func (vs *VirtualServer) HealthFor(rs *RealServer) *healthcheck.Config {
	if rs.HealthCheck != nil {
		return rs.HealthCheck
	}
	return vs.HealthCheck
}

// Sorry returns the sorry server as a real server of vs (weight 1), and
// whether vs has one.
func (vs *VirtualServer) Sorry() (RealServer, bool) {
	if !vs.SorryServer.IsValid() {
		return RealServer{}, false
	}
	return RealServer{Address: vs.SorryServer, Method: vs.SorryMethod, Weight: 1}, true
}

func (vs *VirtualServer) validateHealth(l *errList, p string) {
	checkHealth(l, p, vs.HealthCheck)
	for j := range vs.RealServers {
		checkHealth(l, fmt.Sprintf("%s.real_server[%d]", p, j), vs.RealServers[j].HealthCheck)
	}
	rs, ok := vs.Sorry()
	if !ok {
		return
	}
	var sl errList
	rs.validate(&sl, p+".sorry_server", vs)
	for _, e := range sl {
		// Map the real server's keys onto the sorry server's.
		switch {
		case strings.HasSuffix(e.Key, ".method"):
			e.Key = p + ".sorry_method"
		default:
			e.Key = p + ".sorry_server"
		}
		*l = append(*l, e)
	}
	if vs.Find(vs.SorryServer) >= 0 {
		l.add(p+".sorry_server", ErrInvalid, "%s is also a real server of this virtual server", vs.SorryServer)
	}
}

// sameHealth reports whether a and b, two virtual services with the same
// key, have the same health checks and sorry server.
func sameHealth(a, b *VirtualServer) bool {
	if a.SorryServer != b.SorryServer || (a.SorryServer.IsValid() && a.SorryMethod != b.SorryMethod) {
		return false
	}
	if !reflect.DeepEqual(a.HealthCheck, b.HealthCheck) {
		return false
	}
	for i := range b.RealServers {
		j := a.Find(b.RealServers[i].Address)
		if j < 0 || !reflect.DeepEqual(a.RealServers[j].HealthCheck, b.RealServers[i].HealthCheck) {
			return false
		}
	}
	return true
}

// sameServer compares what the data path sees of a real server.
func sameServer(a, b *RealServer) bool {
	return a.Address == b.Address && a.Method == b.Method && a.Weight == b.Weight &&
		a.UpperThreshold == b.UpperThreshold && a.LowerThreshold == b.LowerThreshold
}

// marshalHealth writes h as a TOML table under header, omitting unset keys.
func marshalHealth(b *bytes.Buffer, indent, header string, h *healthcheck.Config) {
	fmt.Fprintf(b, "\n%s[%s]\n", indent, header)
	rv := reflect.ValueOf(h).Elem()
	t := rv.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("toml")
		fv := rv.Field(i)
		if tag == "" || fv.IsZero() {
			continue
		}
		var v string
		switch {
		case f.Type == reflect.TypeFor[time.Duration]():
			v = quote(time.Duration(fv.Int()).String())
		case f.Type.Kind() == reflect.String:
			v = quote(fv.String())
		case f.Type.Kind() == reflect.Int:
			v = fmt.Sprint(fv.Int())
		case f.Type.Kind() == reflect.Bool:
			v = fmt.Sprint(fv.Bool())
		case f.Type.Kind() == reflect.Float64:
			v = fmt.Sprint(fv.Float())
			if !strings.ContainsAny(v, ".eE") {
				v += ".0"
			}
		case f.Type == reflect.TypeFor[[]int]():
			parts := make([]string, fv.Len())
			for j := range parts {
				parts[j] = fmt.Sprint(fv.Index(j).Int())
			}
			v = "[" + strings.Join(parts, ", ") + "]"
		case f.Type == reflect.TypeFor[[]string]():
			parts := make([]string, fv.Len())
			for j := range parts {
				parts[j] = quote(fv.Index(j).String())
			}
			v = "[" + strings.Join(parts, ", ") + "]"
		case f.Type == reflect.TypeFor[map[string]string]():
			m := fv.Interface().(map[string]string)
			ks := make([]string, 0, len(m))
			for k := range m {
				ks = append(ks, k)
			}
			sort.Strings(ks)
			parts := make([]string, len(ks))
			for j, k := range ks {
				parts[j] = quote(k) + " = " + quote(m[k])
			}
			v = "{ " + strings.Join(parts, ", ") + " }"
		default:
			continue
		}
		kv(b, indent, tag, v)
	}
}

// parseSorry converts the sorry_server and sorry_method keys.
func parseSorry(l *errList, p string, vs *VirtualServer, server, method any) {
	vs.SorryMethod = DR
	var s string
	if getString(l, p+".sorry_method", method, &s) {
		if m, err := ParseMethod(s); err != nil {
			l.addErr(p+".sorry_method", err)
		} else {
			vs.SorryMethod = m
		}
	}
	if getString(l, p+".sorry_server", server, &s) {
		ap, err := ParseAddrPort(s, false)
		if err != nil {
			l.addErr(p+".sorry_server", err)
			return
		}
		if !hasPort(s) {
			ap = netip.AddrPortFrom(ap.Addr(), vs.Address.Port())
		}
		vs.SorryServer = ap
	}
}

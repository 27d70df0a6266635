package load

import (
	"fmt"
	"net"
	"net/url"
)

// The load generator only ever targets this machine: it is a measuring tool,
// not something to point at a shared environment by mistake. These checks
// refuse any other address before a single request is sent.

// CheckLoopbackAddr accepts host:port whose host is a loopback IP or
// "localhost".
func CheckLoopbackAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return fmt.Errorf("address %q: want host:port", addr)
	}
	return checkHost(addr, host)
}

// CheckLoopbackURL accepts an http:// URL on a loopback host.
func CheckLoopbackURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("gateway %q: want http://host:port", raw)
	}
	return checkHost(raw, u.Hostname())
}

func checkHost(what, host string) error {
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%q is not a loopback address: the load generator only targets this machine", what)
}

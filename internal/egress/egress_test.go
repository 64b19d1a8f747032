package egress

import (
	"slices"
	"testing"
)

func TestProxyEnv(t *testing.T) {
	t.Parallel()
	env, err := ProxyEnv("10.0.0.7:3128", false)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"} {
		if env[k] != "http://10.0.0.7:3128" {
			t.Errorf("%s = %q", k, env[k])
		}
	}
	if _, ok := env["SSL_CERT_FILE"]; ok {
		t.Error("a CA variable without a CA: TLS would fail for want of a file")
	}
	withCA, _ := ProxyEnv("[fd00::7]:3128", true)
	if withCA["HTTPS_PROXY"] != "http://[fd00::7]:3128" || withCA["SSL_CERT_FILE"] != CAMountPath+"/"+CABundleFile || withCA["NODE_EXTRA_CA_CERTS"] != CAMountPath+"/"+CAFile {
		t.Errorf("with a CA: %v", withCA)
	}
	for k := range withCA {
		if !slices.Contains(ProxyVariables, k) {
			t.Errorf("%s is not in ProxyVariables: a publisher could never remove it", k)
		}
	}
	for _, bad := range []string{"10.0.0.7", ":3128", "10.0.0.7:0", "10.0.0.7:http"} {
		if _, err := ProxyEnv(bad, false); err == nil {
			t.Errorf("ProxyEnv(%q) accepted", bad)
		}
	}
}

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/gkexec/gkexec/gateway"
)

const (
	flagOutDir   = "out-dir"
	flagDomain   = "domain"
	flagValidity = "validity"
)

// gatewayCACommand makes a namespace's CA: the certificate every sandbox of the namespace
// trusts, and the key only the gateway may read.
func gatewayCACommand() *cli.Command {
	return &cli.Command{
		Name:      "ca",
		Usage:     "make a CA for the egress gateway: ca.crt (for sandboxes) and ca.key (for the gateway alone)",
		ArgsUsage: " ",
		Description: `Writes ca.crt and ca.key (mode 0600) to --out-dir, which must not hold them already. Name-constrain
the CA with --domain, once per domain secrets are bound to: sandboxes then accept its
certificates for those domains (and their subdomains) only, so its key, were it stolen, could
impersonate no other host to them.

   gkexec gateway ca --out-dir ca --domain api.example.com --domain example.org
   kubectl -n gkexec-egress create secret generic gkexec-egress-ca --from-file=ca/ca.crt --from-file=ca/ca.key`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: flagOutDir, Required: true, TakesFile: true, Usage: "`DIR` to write ca.crt and ca.key to (created if missing)"},
			&cli.StringSliceFlag{Name: flagDomain, Usage: "permit only this `DOMAIN` and its subdomains (repeatable); none: any name"},
			&cli.DurationFlag{Name: flagValidity, Value: 2 * 365 * 24 * time.Hour, Usage: "how long the CA is valid; rotating it means new Pods trust the new one"},
		},
		Action: gatewayCAAction,
	}
}

func gatewayCAAction(c *cli.Context) error {
	if c.Args().Len() > 0 {
		return usageError("gateway ca takes no arguments, got %q", c.Args().Slice())
	}
	dir := c.String(flagOutDir)
	certPath, keyPath := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	for _, p := range []string{certPath, keyPath} {
		if _, err := os.Stat(p); err == nil {
			return usageError("%s exists: a CA is not overwritten (remove it first, or choose another --%s)", p, flagOutDir)
		}
	}
	cert, key, err := gateway.GenerateCA(gateway.CAOptions{PermittedDomains: c.StringSlice(flagDomain), Validity: c.Duration(flagValidity)}, time.Now())
	if err != nil {
		return usageError("%v", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return cli.Exit(err, exitRunner)
	}
	// The key first, created exclusively and private; then the certificate, which is public.
	if err := writeNew(keyPath, key, 0o600); err != nil {
		return cli.Exit(err, exitRunner)
	}
	if err := writeNew(certPath, cert, 0o644); err != nil {
		_ = os.Remove(keyPath)
		return cli.Exit(err, exitRunner)
	}
	fmt.Fprintf(c.App.Writer, "%s\n%s\n", certPath, keyPath)
	return nil
}

// writeNew creates path with data, failing if it exists.
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		_ = os.Remove(path)
		return err
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(path)
		return err
	}
	return nil
}

package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// maxSecretFileBytes bounds one secret file.
const maxSecretFileBytes = 64 << 10

// DirSecrets reads secrets from a directory holding one file per secret, as Kubernetes mounts
// a Secret: the file's name is the secret's name, its content the value, less one trailing
// line break (what `echo` and editors add). Hidden entries (Kubernetes' ..data links) are
// skipped. Reload re-reads it: Kubernetes updates a mounted Secret in place.
type DirSecrets struct {
	dir    string
	mu     sync.RWMutex
	values map[string]string
}

// LoadSecretsDir reads dir; every file must be a valid secret.
func LoadSecretsDir(dir string) (*DirSecrets, error) {
	d := &DirSecrets{dir: dir}
	if err := d.Reload(); err != nil {
		return nil, err
	}
	return d, nil
}

// Reload re-reads the directory; on error the values read before stay.
func (d *DirSecrets) Reload() error {
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		return fmt.Errorf("%w: secrets directory: %w", ErrInvalidSecret, err)
	}
	values := map[string]string{}
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		path := filepath.Join(d.dir, name)
		info, err := os.Stat(path) // follows Kubernetes' symbolic links
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: %s: %w", ErrInvalidSecret, path, err))
			continue
		}
		if info.IsDir() {
			continue
		}
		if err := checkSecretName(name); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
			continue
		}
		v, err := readSecretFile(path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := checkSecretValue(name, v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
			continue
		}
		values[name] = v
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	d.mu.Lock()
	d.values = values
	d.mu.Unlock()
	return nil
}

func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidSecret, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFileBytes+1))
	if err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrInvalidSecret, path, err)
	}
	if len(b) > maxSecretFileBytes {
		return "", fmt.Errorf("%w: %s: larger than %d bytes", ErrInvalidSecret, path, maxSecretFileBytes)
	}
	v := strings.TrimSuffix(string(b), "\n")
	return strings.TrimSuffix(v, "\r"), nil
}

// Secret implements SecretSource.
func (d *DirSecrets) Secret(name string) (string, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	v, ok := d.values[name]
	return v, ok
}

// Names lists the secrets read.
func (d *DirSecrets) Names() []string {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return slices.Sorted(maps.Keys(d.values))
}

// Watch reloads every interval until ctx ends, logging failures (the values before stay).
func (d *DirSecrets) Watch(ctx context.Context, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := d.Reload(); err != nil {
				log.Warn("reloading secrets: keeping the values read before", "dir", d.dir, "error", err)
			}
		}
	}
}

package gateway

import "errors"

// Errors the package returns; wrap-checked with errors.Is.
var (
	// ErrInvalidOptions: Options failed validation; the message names every bad field.
	ErrInvalidOptions = errors.New("invalid gateway options")
	// ErrInvalidRule: an allow-list entry, a narrowing or a secret binding is malformed.
	ErrInvalidRule = errors.New("invalid rule")
	// ErrInvalidCA: the CA certificate or key cannot sign leaf certificates.
	ErrInvalidCA = errors.New("invalid CA")
	// ErrInvalidSecret: a secret is missing, empty, too short or holds a line break.
	ErrInvalidSecret = errors.New("invalid secret")
	// ErrInvalidConfig: the configuration file cannot be read or is malformed.
	ErrInvalidConfig = errors.New("invalid gateway configuration")
)

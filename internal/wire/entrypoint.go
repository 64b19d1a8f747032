package wire

import _ "embed"

// Entrypoint is the sandbox's end of the wire: the Python program every sandbox runs (standard
// library only). It is deployed as one file: inlined into a warm pool Pod's `python3 -c`, and
// carried by a cold execution's ConfigMap.
//
//go:embed entrypoint.py
var Entrypoint string

// A module of its own so the main module's `go build ./...` and `go vet ./...` never see this program.
module gkexec.local/pause

go 1.22

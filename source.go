package atoll

import "embed"

// Source is the guest library's own source — this package, abi,
// framering and netstack, without tests — with the module's go.mod and go.sum. The
// atoll command carries it so that `atoll lib` can give any module a
// copy to build against (docs/guest-library.md). Nothing in a unikernel
// refers to it, so the linker leaves it out of their executables.
//
//go:embed *.go abi/*.go framering/*.go netstack/*.go netstack/*.s go.mod go.sum
var Source embed.FS

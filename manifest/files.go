package manifest

import (
	"fmt"
	"path"
	"path/filepath"
	"strings"
)

// FilesEntry is one `files SRC DST` directive: SRC (a file or a directory,
// relative to the package directory) is packed into the image's read-only
// tree at the guest path DST.
type FilesEntry struct {
	Src string `json:"src"` // clean, relative, inside the package directory
	Dst string `json:"dst"` // absolute, clean guest path
}

// Limits of guest paths, as Linux has them.
const (
	MaxPath = 4095 // bytes in a path (PATH_MAX less its NUL)
	MaxName = 255  // bytes in one path element (NAME_MAX)
)

// reservedDirs are the guest directories the monitor serves itself; no
// packed file may lie at or under them.
var reservedDirs = map[string]string{
	"/proc": "the monitor serves /proc itself",
	"/dev":  "the monitor serves /dev itself",
	"/sys":  "the monitor serves /sys itself",
	"/tmp":  "/tmp is each VM's private writable directory, served by the monitor",
}

// CheckGuestPath reports why p cannot be a path in an image's tree: it
// must be absolute and clean, not the root, within Linux's length limits,
// and not at or under a directory the monitor serves (/proc, /dev, /sys,
// /tmp).
func CheckGuestPath(p string) error {
	switch {
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("must be an absolute guest path (e.g. /etc/app)")
	case strings.IndexByte(p, 0) >= 0:
		return fmt.Errorf("must not contain a NUL byte")
	case path.Clean(p) != p:
		return fmt.Errorf("must be a clean path: %s", path.Clean(p))
	case p == "/":
		return fmt.Errorf("cannot be the root: give a directory below it (e.g. /srv)")
	case len(p) > MaxPath:
		return fmt.Errorf("is longer than %d bytes", MaxPath)
	}
	top, _, _ := strings.Cut(p[1:], "/")
	if why, ok := reservedDirs["/"+top]; ok {
		return fmt.Errorf("lies in /%s: %s", top, why)
	}
	for _, elem := range strings.Split(p[1:], "/") {
		if len(elem) > MaxName {
			return fmt.Errorf("has an element longer than %d bytes", MaxName)
		}
	}
	return nil
}

// checkFilesSrc reports why src cannot be a files source: it must be
// relative to the package directory and stay inside it (lexically; atoll
// build checks again after resolving symbolic links).
func checkFilesSrc(src string) error {
	switch {
	case src == "" || filepath.IsAbs(src):
		return fmt.Errorf("must be a path relative to the package directory")
	case strings.IndexByte(src, 0) >= 0:
		return fmt.Errorf("must not contain a NUL byte")
	case !filepath.IsLocal(src):
		return fmt.Errorf("is outside the package directory")
	}
	return nil
}

// parseFiles applies `files SRC DST`.
func (p *parser) parseFiles(line int, args []string) error {
	if err := p.args(line, args, 2, 2, "files SRC DST"); err != nil {
		return err
	}
	src, dst := args[0], args[1]
	if err := checkFilesSrc(src); err != nil {
		return p.errorf(line, "files source %q %v", src, err)
	}
	if err := CheckGuestPath(dst); err != nil {
		return p.errorf(line, "files destination %q %v", dst, err)
	}
	if first, dup := p.seen["files "+dst]; dup {
		return p.errorf(line, "files destination %s given twice (first on line %d)", dst, first)
	}
	p.seen["files "+dst] = line
	p.m.Files = append(p.m.Files, FilesEntry{Src: filepath.Clean(src), Dst: dst})
	return nil
}

// parseSwitch applies `tzdata on|off` or `cacerts on|off`.
func (p *parser) parseSwitch(line int, verb string, args []string, v *bool) error {
	if err := p.args(line, args, 1, 1, verb+" on|off"); err != nil {
		return err
	}
	if err := p.once(line, verb); err != nil {
		return err
	}
	switch args[0] {
	case "on":
		*v = true
	case "off":
		*v = false
	default:
		return p.errorf(line, "%s %q must be on or off", verb, args[0])
	}
	return nil
}

// validateFiles checks files entries that did not come from the parser.
func validateFiles(files []FilesEntry) error {
	seen := map[string]bool{}
	for _, f := range files {
		if err := checkFilesSrc(f.Src); err != nil {
			return fmt.Errorf("files source %q %v", f.Src, err)
		}
		if filepath.Clean(f.Src) != f.Src {
			return fmt.Errorf("files source %q is not clean", f.Src)
		}
		if err := CheckGuestPath(f.Dst); err != nil {
			return fmt.Errorf("files destination %q %v", f.Dst, err)
		}
		if seen[f.Dst] {
			return fmt.Errorf("files destination %q given twice", f.Dst)
		}
		seen[f.Dst] = true
	}
	return nil
}

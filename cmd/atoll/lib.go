package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"go/parser"
	"go/token"
	"go/version"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"

	"atoll.dev/atoll"
	"atoll.dev/atoll/abi"
)

const libUsage = `Usage: atoll lib [-f] [DIR]

Makes the guest library, atoll.dev/atoll (atoll.OpenBlock, atoll.Net),
importable from the Go module in DIR (default: the current directory; its
go.mod may be in a parent), for atoll build and plain go build alike, with
no download of it: atoll carries the library's source, writes it to
.atoll/ beside go.mod, and points go.mod at that copy:

  require atoll.dev/atoll v0.0.0-00010101000000-000000000000
  replace atoll.dev/atoll => ./.atoll

together with the library's own requirements (gVisor, ...) at the versions
this atoll uses, marked // indirect, and their go.sum lines. Other
requirements are left alone (one older than the library needs is raised,
and said so).

Run it again after upgrading atoll: it updates the copy and says what
changed; atoll build says when the copy is not the running atoll's. Commit
.atoll/ with the module. atoll new runs it for every new module.

Flags:
`

// The copy of the guest library in a module.
const (
	libModule    = "atoll.dev/atoll"
	libDir       = ".atoll"    // beside go.mod; ignored by ./... patterns
	libStamp     = "VERSION"   // in libDir: "lib ID abi VERSION"
	libReadme    = "README.md" // in libDir
	libZeroPseud = "v0.0.0-00010101000000-000000000000"
)

const libReadmeText = `# .atoll: the Atoll guest library

A copy of atoll.dev/atoll (the guest library: atoll.OpenBlock, atoll.Net),
written by ` + "`atoll lib`" + ` from the source the atoll command carries. This
module's go.mod points at it (replace atoll.dev/atoll => ./.atoll), so the
module builds with atoll build and go build without downloading it.

Do not edit it: ` + "`atoll lib`" + ` rewrites it (and refuses while it holds
edits, unless run with -f). Commit it with the module. VERSION names the
library version: atoll build says when it is not the running atoll's, and
` + "`atoll lib`" + ` updates it.
`

func cmdLib(args []string, stdout, stderr *os.File) int {
	fs := flag.NewFlagSet("lib", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), libUsage); fs.PrintDefaults() }
	force := fs.Bool("f", false, "overwrite a copy edited by hand, and a go.mod replace of atoll.dev/atoll that points elsewhere")
	if code, done := parseFlags(fs, args, stdout); done {
		return code
	}
	if fs.NArg() > 1 {
		fmt.Fprintln(stderr, "atoll lib: more than one DIR")
		return exitUsage
	}
	dir := "."
	if fs.NArg() == 1 {
		dir = fs.Arg(0)
	}
	notes, err := installLib(dir, *force)
	for _, n := range notes {
		fmt.Fprintf(stdout, "atoll lib: %s\n", n)
	}
	if err != nil {
		fmt.Fprintf(stderr, "atoll lib: %v\n", err)
		return exitFailure
	}
	return 0
}

// guestLib is the guest library's source as this atoll carries it.
type guestLib struct {
	files map[string][]byte // slash paths in the copy; no tests
	id    string            // 12 hex digits of a SHA-256 over files
	mod   *modfile.File     // its go.mod
	sums  map[module.Version][]string
	needs []module.Version // what a module using it must require
}

// embeddedLib loads atoll.Source once.
var embeddedLib = sync.OnceValues(func() (*guestLib, error) { return loadLib(atoll.Source) })

func loadLib(fsys fs.FS) (*guestLib, error) {
	l := &guestLib{files: map[string][]byte{}, sums: map[module.Version][]string{}}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !isLibFile(p) {
			return err
		}
		data, err := fs.ReadFile(fsys, p)
		l.files[p] = data
		return err
	})
	if err != nil {
		return nil, err
	}
	l.id = libID(l.files)
	if l.mod, err = modfile.Parse("go.mod", l.files["go.mod"], nil); err != nil {
		return nil, err
	}
	for line := range strings.Lines(string(l.files["go.sum"])) {
		if f := strings.Fields(line); len(f) == 3 {
			m := module.Version{Path: f[0], Version: strings.TrimSuffix(f[1], "/go.mod")}
			l.sums[m] = append(l.sums[m], line)
		}
	}
	// The library needs every requirement of atoll's go.mod but the
	// direct ones its own source does not import (those only atoll's
	// commands use): indirect ones may serve either, and an extra
	// requirement costs nothing.
	imports := map[string]bool{}
	for p, data := range l.files {
		if !strings.HasSuffix(p, ".go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), p, data, parser.ImportsOnly)
		if err != nil {
			return nil, err
		}
		for _, im := range f.Imports {
			imports[strings.Trim(im.Path.Value, `"`)] = true
		}
	}
	for _, r := range l.mod.Require {
		used := r.Indirect
		for im := range imports {
			used = used || im == r.Mod.Path || strings.HasPrefix(im, r.Mod.Path+"/")
		}
		if used {
			l.needs = append(l.needs, r.Mod)
		}
	}
	return l, nil
}

// isLibFile reports whether p, a slash path relative to the library's
// root, is one of the files a copy holds.
func isLibFile(p string) bool {
	if p == "go.mod" || p == "go.sum" {
		return true
	}
	dir, file := path.Split(p)
	return (dir == "" || dir == "abi/" || dir == "framering/" || dir == "netstack/") &&
		(strings.HasSuffix(file, ".go") && !strings.HasSuffix(file, "_test.go") || strings.HasSuffix(file, ".s"))
}

func libID(files map[string][]byte) string {
	h := sha256.New()
	for _, p := range slices.Sorted(maps.Keys(files)) {
		fmt.Fprintf(h, "%s %d\n", p, len(files[p]))
		h.Write(files[p])
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

func (l *guestLib) stamp() string { return fmt.Sprintf("lib %s abi %s\n", l.id, abi.Version) }

// parseStamp reads a VERSION file's library id and ABI version.
func parseStamp(data []byte) (id, abiVersion string, ok bool) {
	f := strings.Fields(string(data))
	if len(f) != 4 || f[0] != "lib" || f[2] != "abi" {
		return "", "", false
	}
	return f[1], f[3], true
}

// findModule returns the directory holding the go.mod of the module dir
// is in.
func findModule(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := abs; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("%s is not in a Go module (no go.mod there or above): make one with go mod init, or use atoll new", dir)
		}
	}
}

// installLib writes or updates the copy of the guest library in the
// module dir is in and points its go.mod at it. It checks everything
// before it writes anything, and returns what it did, one note a line.
func installLib(dir string, force bool) (notes []string, err error) {
	l, err := embeddedLib()
	if err != nil {
		return nil, err
	}
	root, err := findModule(dir)
	if err != nil {
		return nil, err
	}
	modPath := filepath.Join(root, "go.mod")
	modData, err := os.ReadFile(modPath)
	if err != nil {
		return nil, err
	}
	mf, err := modfile.Parse(modPath, modData, nil)
	if err != nil {
		return nil, err
	}
	if mf.Module == nil {
		return nil, fmt.Errorf("%s has no module line", modPath)
	}
	if mf.Module.Mod.Path == libModule {
		return nil, fmt.Errorf("%s is atoll.dev/atoll itself, which needs no copy of itself", root)
	}
	copyDir := filepath.Join(root, libDir)
	files, err := planCopy(l, copyDir, force)
	if err != nil {
		return nil, err
	}
	modNotes, err := editGoMod(l, mf, force)
	if err != nil {
		return nil, err
	}
	newMod, err := mf.Format()
	if err != nil {
		return nil, err
	}
	sumPath := filepath.Join(root, "go.sum")
	oldSum, err := os.ReadFile(sumPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	newSum, added := mergeSums(oldSum, l, mf)

	show := showPath(dir, copyDir)
	notes = append(notes, files.apply(l, copyDir, show)...)
	if err := files.err; err != nil {
		return notes, err
	}
	if !bytes.Equal(newMod, modData) {
		if err := writeFileAtomic(modPath, newMod); err != nil {
			return notes, err
		}
		notes = append(notes, modNotes...)
	}
	if added > 0 {
		if err := writeFileAtomic(sumPath, newSum); err != nil {
			return notes, err
		}
		notes = append(notes, fmt.Sprintf("go.sum: added %d lines (the library's modules, as atoll's go.sum has them)", added))
	}
	return notes, nil
}

// showPath names p, a path in or above dir, as the user named dir.
func showPath(dir, p string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return p
	}
	rel, err := filepath.Rel(abs, p)
	if err != nil {
		return p
	}
	return filepath.Join(dir, rel)
}

// copyPlan is what updating a copy changes.
type copyPlan struct {
	fresh                   bool // no copy yet
	oldID                   string
	added, changed, removed []string
	err                     error
}

// planCopy compares the copy in copyDir with l, refusing to overwrite
// what atoll lib did not write unless force is set.
func planCopy(l *guestLib, copyDir string, force bool) (*copyPlan, error) {
	p := &copyPlan{}
	if _, err := os.Stat(copyDir); errors.Is(err, os.ErrNotExist) {
		p.fresh = true
		p.added = slices.Sorted(maps.Keys(l.files))
		return p, nil
	}
	onDisk := map[string][]byte{}
	err := filepath.WalkDir(copyDir, func(fp string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(copyDir, fp)
		if err != nil || !isLibFile(filepath.ToSlash(rel)) {
			return err
		}
		data, err := os.ReadFile(fp)
		onDisk[filepath.ToSlash(rel)] = data
		return err
	})
	if err != nil {
		return nil, err
	}
	stamp, _ := os.ReadFile(filepath.Join(copyDir, libStamp))
	id, _, ok := parseStamp(stamp)
	switch {
	case !ok && !force:
		return nil, fmt.Errorf("%s exists but was not written by atoll lib (it has no valid %s): move it away, or run atoll lib -f to replace its library files", copyDir, libStamp)
	case ok && libID(onDisk) != id && !force:
		return nil, fmt.Errorf("the files in %s differ from the library it says it holds (lib %s): they were edited; commit or move the edits, or run atoll lib -f to overwrite them", copyDir, id)
	}
	p.oldID = id
	for _, f := range slices.Sorted(maps.Keys(l.files)) {
		if old, ok := onDisk[f]; !ok {
			p.added = append(p.added, f)
		} else if !bytes.Equal(old, l.files[f]) {
			p.changed = append(p.changed, f)
		}
	}
	for _, f := range slices.Sorted(maps.Keys(onDisk)) {
		if _, ok := l.files[f]; !ok {
			p.removed = append(p.removed, f)
		}
	}
	return p, nil
}

// apply writes the plan out, returning notes; show names the copy.
func (p *copyPlan) apply(l *guestLib, copyDir, show string) []string {
	write := func(rel string, data []byte) {
		fp := filepath.Join(copyDir, filepath.FromSlash(rel))
		if old, err := os.ReadFile(fp); err == nil && bytes.Equal(old, data) {
			return
		}
		if p.err == nil {
			p.err = os.MkdirAll(filepath.Dir(fp), 0o755)
		}
		if p.err == nil {
			p.err = writeFileAtomic(fp, data)
		}
	}
	for _, f := range append(slices.Clone(p.added), p.changed...) {
		write(f, l.files[f])
	}
	for _, f := range p.removed {
		if p.err == nil {
			p.err = os.Remove(filepath.Join(copyDir, filepath.FromSlash(f)))
		}
	}
	write(libStamp, []byte(l.stamp()))
	write(libReadme, []byte(libReadmeText))
	what := fmt.Sprintf("guest library lib %s (ABI %s)", l.id, abi.Version)
	switch {
	case p.fresh:
		return []string{fmt.Sprintf("wrote %s: the %s, %d files", show, what, len(l.files))}
	case len(p.added)+len(p.changed)+len(p.removed) == 0:
		return []string{fmt.Sprintf("%s is up to date: the %s", show, what)}
	}
	from := ""
	if p.oldID != "" && p.oldID != l.id {
		from = " from lib " + p.oldID
	}
	var parts []string
	for _, c := range []struct {
		verb  string
		files []string
	}{{"changed", p.changed}, {"added", p.added}, {"removed", p.removed}} {
		if len(c.files) > 0 {
			parts = append(parts, c.verb+" "+strings.Join(c.files, ", "))
		}
	}
	return []string{fmt.Sprintf("updated %s%s to the %s: %s", show, from, what, strings.Join(parts, "; "))}
}

// editGoMod points mf at the copy and adds the library's requirements.
func editGoMod(l *guestLib, mf *modfile.File, force bool) (notes []string, err error) {
	target := "./" + libDir
	var replaced []*modfile.Replace // of atoll.dev/atoll, to drop
	for _, r := range mf.Replace {
		if r.Old.Path != libModule {
			continue
		}
		if r.New.Version == "" && path.Clean(r.New.Path) == libDir {
			target = "" // already there
			continue
		}
		was := r.New.Path
		if r.New.Version != "" {
			was += " " + r.New.Version
		}
		if !force {
			return nil, fmt.Errorf("go.mod already replaces atoll.dev/atoll with %s; nothing was changed (atoll lib -f points it at ./%s instead)", was, libDir)
		}
		replaced = append(replaced, r)
		notes = append(notes, fmt.Sprintf("go.mod: dropped replace atoll.dev/atoll => %s (-f)", was))
	}

	var added []string
	have := map[string]*modfile.Require{}
	var reqs []*modfile.Require
	for _, r := range mf.Require {
		have[r.Mod.Path] = r
		reqs = append(reqs, &modfile.Require{Mod: r.Mod, Indirect: r.Indirect})
	}
	if have[libModule] == nil {
		reqs = append(reqs, &modfile.Require{Mod: module.Version{Path: libModule, Version: libZeroPseud}})
		added = append(added, "require atoll.dev/atoll "+libZeroPseud)
	}
	nIndirect := 0
	for _, m := range l.needs {
		r := have[m.Path]
		switch {
		case r == nil:
			reqs = append(reqs, &modfile.Require{Mod: m, Indirect: true})
			nIndirect++
		case semver.Compare(r.Mod.Version, m.Version) < 0:
			for _, q := range reqs {
				if q.Mod.Path == m.Path {
					q.Mod.Version = m.Version
				}
			}
			notes = append(notes, fmt.Sprintf("go.mod: raised %s %s to %s, which the guest library needs", m.Path, r.Mod.Version, m.Version))
		case semver.Compare(r.Mod.Version, m.Version) > 0:
			notes = append(notes, fmt.Sprintf("go.mod: kept %s %s, newer than the guest library's %s: builds use it, and the library is not tested with it", m.Path, r.Mod.Version, m.Version))
		}
	}
	if nIndirect > 0 {
		added = append(added, fmt.Sprintf("%d // indirect requirements of the library", nIndirect))
	}
	mf.SetRequireSeparateIndirect(reqs)

	for _, r := range replaced {
		if err := mf.DropReplace(r.Old.Path, r.Old.Version); err != nil {
			return nil, err
		}
	}
	if target != "" {
		if err := mf.AddReplace(libModule, "", target, ""); err != nil {
			return nil, err
		}
		added = append(added, "replace atoll.dev/atoll => "+target)
	}
	if len(added) > 0 {
		notes = append([]string{"go.mod: added " + strings.Join(added, ", ")}, notes...)
	}

	if lv := l.mod.Go; lv != nil && (mf.Go == nil || version.Compare("go"+mf.Go.Version, "go"+lv.Version) < 0) {
		was := "none"
		if mf.Go != nil {
			was = mf.Go.Version
		}
		if err := mf.AddGoStmt(lv.Version); err != nil {
			return nil, err
		}
		notes = append(notes, fmt.Sprintf("go.mod: raised go %s to %s, the guest library's", was, lv.Version))
		if tc := mf.Toolchain; tc != nil && version.Compare(tc.Name, "go"+lv.Version) <= 0 {
			mf.DropToolchainStmt()
			notes = append(notes, fmt.Sprintf("go.mod: dropped toolchain %s, not newer than the go line", tc.Name))
		}
	}
	mf.Cleanup()
	return notes, nil
}

// mergeSums adds to a go.sum the lines of the library's modules at the
// versions mf now requires, returning the new file and how many lines
// were added.
func mergeSums(old []byte, l *guestLib, mf *modfile.File) ([]byte, int) {
	lines := map[string]bool{}
	for line := range strings.Lines(string(old)) {
		if strings.TrimSpace(line) != "" {
			lines[strings.TrimSuffix(line, "\n")+"\n"] = true
		}
	}
	added := 0
	for _, r := range mf.Require {
		for _, line := range l.sums[r.Mod] {
			if !lines[line] {
				lines[line] = true
				added++
			}
		}
	}
	if added == 0 {
		return old, 0
	}
	all := slices.Collect(func(yield func(string) bool) {
		for line := range lines {
			if !yield(line) {
				return
			}
		}
	})
	// go.sum's order: by module path, then version (semantically), the
	// /go.mod line after the module's own.
	slices.SortFunc(all, func(a, b string) int {
		fa, fb := strings.Fields(a), strings.Fields(b)
		if len(fa) < 2 || len(fb) < 2 {
			return strings.Compare(a, b)
		}
		if c := strings.Compare(fa[0], fb[0]); c != 0 {
			return c
		}
		va, sa, _ := strings.Cut(fa[1], "/")
		vb, sb, _ := strings.Cut(fb[1], "/")
		if c := semver.Compare(va, vb); c != 0 {
			return c
		}
		if c := strings.Compare(sa, sb); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	return []byte(strings.Join(all, "")), added
}

// writeFileAtomic replaces path with data through a temporary file, so an
// interrupted write leaves the old file.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".atoll-lib-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// libHint returns a one-line hint when the module dir is in uses a copy
// of the guest library other than this atoll's, or "".
func libHint(dir string) string {
	root, err := findModule(dir)
	if err != nil {
		return ""
	}
	modPath := filepath.Join(root, "go.mod")
	data, err := os.ReadFile(modPath)
	if err != nil {
		return ""
	}
	mf, err := modfile.Parse(modPath, data, nil)
	if err != nil {
		return ""
	}
	for _, r := range mf.Replace {
		if r.Old.Path != libModule || r.New.Version != "" {
			continue
		}
		copyDir := r.New.Path
		if !filepath.IsAbs(copyDir) {
			copyDir = filepath.Join(root, copyDir)
		}
		stamp, err := os.ReadFile(filepath.Join(copyDir, libStamp))
		if err != nil {
			return "" // not a copy atoll lib wrote (a checkout of atoll, say)
		}
		l, err := embeddedLib()
		if err != nil {
			return ""
		}
		id, abiVersion, _ := parseStamp(stamp)
		if id == l.id {
			return ""
		}
		how := "differs from"
		if abiVersion != abi.Version && abi.Compatible(abiVersion) {
			how = "is older than"
		}
		show := showPath(dir, copyDir)
		return fmt.Sprintf("atoll: note: the guest library in %s (lib %s, ABI %s) %s this atoll's (lib %s, ABI %s): run 'atoll lib' to update it", show, id, abiVersion, how, l.id, abi.Version)
	}
	return ""
}

// missingLibHint explains a go build failure that comes from importing
// the guest library in a module atoll lib has not prepared, or "".
func missingLibHint(goErrors string) string {
	switch {
	case strings.Contains(goErrors, "no required module provides package "+libModule+";"),
		strings.Contains(goErrors, "cannot find module providing package "+libModule+":"):
		return fmt.Sprintf("atoll: note: this module has no copy of the guest library %s: run 'atoll lib' to give it one (see 'atoll help lib')", libModule)
	case strings.Contains(goErrors, "replacement directory ./"+libDir+" does not exist"):
		return fmt.Sprintf("atoll: note: go.mod points %s at ./%s, which is missing: run 'atoll lib' to write it", libModule, libDir)
	}
	return ""
}

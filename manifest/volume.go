package manifest

import (
	"fmt"
	"path"
	"strings"

	"atoll.dev/atoll/abi"
)

// VolumeSpec is where a volume appears in the guest's file system:
// `volume NAME DST [ro]`. The host directory is the operator's choice at
// run time (atoll run --volume NAME=HOSTDIR).
type VolumeSpec struct {
	Path     string `json:"path"` // absolute, clean guest path
	ReadOnly bool   `json:"readonly,omitempty"`
}

func init() {
	registerKind(abi.KindVolume, kind{
		usage:   "volume NAME DST [ro]",
		minArgs: 1, maxArgs: 2,
		parse: parseVolume,
		spec:  func() Spec { return new(VolumeSpec) },
	})
}

func parseVolume(name string, args []string) (Spec, error) {
	s := &VolumeSpec{Path: args[0]}
	if len(args) == 2 {
		if args[1] != "ro" {
			return nil, fmt.Errorf("volume %s: %q: the only option is ro", name, args[1])
		}
		s.ReadOnly = true
	}
	if err := s.validate(); err != nil {
		return nil, fmt.Errorf("volume %s: %w", name, err)
	}
	return s, nil
}

// ValidMountPath checks a guest path where a volume (or an operator's
// direct mount) may appear: absolute, clean, and not where the monitor
// serves files of its own.
func ValidMountPath(p string) error {
	if !path.IsAbs(p) || path.Clean(p) != p || p == "/" {
		return fmt.Errorf("path %q must be an absolute, clean path other than /", p)
	}
	for _, own := range []string{"/proc", "/dev", "/sys", "/tmp"} {
		if p == own || strings.HasPrefix(p, own+"/") {
			return fmt.Errorf("path %s is under %s, which the monitor serves itself", p, own)
		}
	}
	return nil
}

func (s *VolumeSpec) validate() error {
	if s == nil {
		return fmt.Errorf("no path")
	}
	return ValidMountPath(s.Path)
}

// String describes the volume as atoll inspect shows it.
func (s *VolumeSpec) String() string {
	if s.ReadOnly {
		return s.Path + ", read-only"
	}
	return s.Path
}

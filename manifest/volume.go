package manifest

import (
	"fmt"
	"path"
	"strings"

	"atoll.dev/atoll/abi"
)

// VolumeSpec is where a volume appears in the guest's file system:
// `volume NAME DST [ro] [optional]`. The host directory is the
// operator's choice at run time (atoll run --volume NAME=HOSTDIR); an
// optional volume may be left out, and DST is then absent.
type VolumeSpec struct {
	Path     string `json:"path"` // absolute, clean guest path
	ReadOnly bool   `json:"readonly,omitempty"`
	Optional bool   `json:"optional,omitempty"`
}

func init() {
	registerKind(abi.KindVolume, kind{
		usage:   "volume NAME DST [ro] [optional]",
		minArgs: 1, maxArgs: 3,
		parse: parseVolume,
		spec:  func() Spec { return new(VolumeSpec) },
	})
}

func parseVolume(name string, args []string) (Spec, error) {
	s := &VolumeSpec{Path: args[0]}
	for _, opt := range args[1:] {
		switch {
		case opt == "ro" && !s.ReadOnly:
			s.ReadOnly = true
		case opt == "optional" && !s.Optional:
			s.Optional = true
		case opt == "ro" || opt == "optional":
			return nil, fmt.Errorf("volume %s: %s given twice", name, opt)
		default:
			return nil, fmt.Errorf("volume %s: %q: the options are ro and optional", name, opt)
		}
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
	out := s.Path
	if s.ReadOnly {
		out += ", read-only"
	}
	if s.Optional {
		out += ", optional"
	}
	return out
}

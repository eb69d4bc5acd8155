package manifest

import (
	"fmt"
	"strconv"

	"atoll.dev/atoll/abi"
)

// BlockSpec is a block device's geometry: `block NAME SIZE [SECTOR-SIZE]`.
type BlockSpec struct {
	Size       uint64 `json:"size"`        // bytes, a multiple of SectorSize
	SectorSize uint64 `json:"sector_size"` // 512, 1024, 2048 or 4096
}

// DefaultSectorSize is a block device's sector size unless declared.
const DefaultSectorSize = 512

func init() {
	registerKind(abi.KindBlock, kind{
		usage:   "block NAME SIZE [SECTOR-SIZE]",
		minArgs: 1, maxArgs: 2,
		parse: parseBlock,
		spec:  func() Spec { return new(BlockSpec) },
	})
}

func parseBlock(name string, args []string) (Spec, error) {
	s := &BlockSpec{SectorSize: DefaultSectorSize}
	if len(args) == 2 {
		n, err := strconv.ParseUint(args[1], 10, 64)
		if err != nil || !validSector(n) {
			return nil, fmt.Errorf("block %s sector size %q must be 512, 1024, 2048 or 4096", name, args[1])
		}
		s.SectorSize = n
	}
	n, err := ParseSize(args[0])
	if err != nil || n%s.SectorSize != 0 {
		return nil, fmt.Errorf("block %s size %q must be a size that is a multiple of the sector size %d (e.g. 64M)", name, args[0], s.SectorSize)
	}
	s.Size = n
	return s, nil
}

func validSector(n uint64) bool { return n >= 512 && n <= 4096 && n&(n-1) == 0 }

func (s *BlockSpec) validate() error {
	if s == nil {
		return fmt.Errorf("no geometry")
	}
	if !validSector(s.SectorSize) || s.Size == 0 || s.Size%s.SectorSize != 0 || s.Size > 1<<50 {
		return fmt.Errorf("size %d / sector size %d invalid", s.Size, s.SectorSize)
	}
	return nil
}

// String describes the geometry as atoll inspect shows it.
func (s *BlockSpec) String() string {
	return fmt.Sprintf("%s, %d-byte sectors", FormatSize(s.Size), s.SectorSize)
}

package guestmem

import (
	"encoding/binary"
	"fmt"
)

// Page-table entry bits (Intel SDM vol. 3, 4.5).
const (
	ptePresent = 1 << 0
	pteWrite   = 1 << 1
	pteUser    = 1 << 2
	pteLarge   = 1 << 7
)

// mapRange maps virtual [lo, hi) to guest-physical memory from phys on,
// with 2 MiB pages. All three must be 2 MiB aligned. Called with mu held
// (or before the guest runs).
func (m *Memory) mapRange(lo, hi GuestAddr, phys uint64) error {
	if lo%LargePage != 0 || hi%LargePage != 0 || phys%LargePage != 0 {
		return fmt.Errorf("mapRange [%#x, %#x) to %#x not 2 MiB aligned", lo, hi, phys)
	}
	for a := uint64(lo); a < uint64(hi); a += LargePage {
		pdpt, err := m.tableAt(ptPoolBase, (a>>39)&511)
		if err != nil {
			return err
		}
		pd, err := m.tableAt(pdpt, (a>>30)&511)
		if err != nil {
			return err
		}
		m.putPTE(pd, (a>>21)&511, (phys+a-uint64(lo))|ptePresent|pteWrite|pteUser|pteLarge)
	}
	return nil
}

// tableAt returns the physical address of the table referenced by entry i of
// the table at phys, creating it if absent.
func (m *Memory) tableAt(phys, i uint64) (uint64, error) {
	pt := m.low.host[phys : phys+PageSize]
	e := binary.LittleEndian.Uint64(pt[i*8:])
	if e&ptePresent != 0 {
		return e &^ 0xfff, nil
	}
	if m.ptNext >= ptPoolEnd {
		return 0, fmt.Errorf("page-table pool exhausted")
	}
	next := m.ptNext
	m.ptNext += PageSize
	m.putPTE(phys, i, next|ptePresent|pteWrite|pteUser)
	return next, nil
}

func (m *Memory) putPTE(table, i, v uint64) {
	binary.LittleEndian.PutUint64(m.low.host[table+i*8:], v)
}

// unmapRange clears the leaf entries mapRange wrote for [lo, hi) and
// returns the page-table pages allocated since ptNext to the pool (they
// are zeroed). Used to undo a mapping that failed part-way.
func (m *Memory) unmapRange(lo, hi GuestAddr, ptNext uint64) {
	for a := uint64(lo); a < uint64(hi); a += LargePage {
		pdpt, ok := m.tableIfPresent(ptPoolBase, (a>>39)&511)
		if !ok {
			continue
		}
		pd, ok := m.tableIfPresent(pdpt, (a>>30)&511)
		if !ok {
			continue
		}
		m.putPTE(pd, (a>>21)&511, 0)
	}
	// Entries pointing into the released pages go too.
	for table := uint64(ptPoolBase); table < ptNext; table += PageSize {
		for i := uint64(0); i < 512; i++ {
			e := binary.LittleEndian.Uint64(m.low.host[table+i*8:])
			if e&ptePresent != 0 && e&pteLarge == 0 && e&^0xfff >= ptNext && e&^0xfff < m.ptNext {
				m.putPTE(table, i, 0)
			}
		}
	}
	clear(m.low.host[ptNext:m.ptNext])
	m.ptNext = ptNext
}

func (m *Memory) tableIfPresent(phys, i uint64) (uint64, bool) {
	e := binary.LittleEndian.Uint64(m.low.host[phys+i*8:])
	return e &^ 0xfff, e&ptePresent != 0
}

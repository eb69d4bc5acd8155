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

// SystemAccess is who may use a page of the system area, which is mapped
// with 4 KiB pages so that each page can have its own.
type SystemAccess uint8

// System-area page access, from none to everything.
const (
	SystemNone        SystemAccess = iota // not present
	SystemKernel                          // CPL 0 only, read-only
	SystemKernelWrite                     // CPL 0 only, writable
	SystemUser                            // any privilege, read-only
	SystemUserWrite                       // any privilege, writable: how New maps it
)

func (a SystemAccess) pte() uint64 {
	var e uint64
	if a != SystemNone {
		e |= ptePresent
	}
	if a >= SystemUser {
		e |= pteUser
	}
	if a == SystemKernelWrite || a == SystemUserWrite {
		e |= pteWrite
	}
	return e
}

// mapSystemArea identity-maps the system area with a 4 KiB page table,
// every page present and open to the guest.
func (m *Memory) mapSystemArea() error {
	a := uint64(SystemBase)
	pdpt, err := m.tableAt(ptPoolBase, (a>>39)&511)
	if err != nil {
		return err
	}
	pd, err := m.tableAt(pdpt, (a>>30)&511)
	if err != nil {
		return err
	}
	pt, err := m.tableAt(pd, (a>>21)&511)
	if err != nil {
		return err
	}
	m.systemPT = pt
	return m.ProtectSystem(SystemBase, SystemSize, SystemUserWrite)
}

// ProtectSystem sets the access to the system-area pages of [a, a+n),
// which must lie in it. The hardware exit path keeps the monitor's CPL-0
// code and tables from the guest program this way. Changes reach a vCPU
// when its page-table caches are next flushed (KVM_SET_SREGS does).
func (m *Memory) ProtectSystem(a GuestAddr, n uint64, acc SystemAccess) error {
	if a < SystemBase || a%PageSize != 0 || n%PageSize != 0 || n > SystemSize || uint64(a-SystemBase)+n > SystemSize {
		return fmt.Errorf("ProtectSystem [%#x, +%#x) is not whole pages of the system area", a, n)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for p := uint64(a); p < uint64(a)+n; p += PageSize {
		m.putPTE(m.systemPT, (p>>12)&511, p|acc.pte())
	}
	return nil
}

// MMIOBase is the lowest guest-physical address above every memory slot
// this address space may ever have (the low region, then the heap region
// at its 1 GiB-aligned place): the start of a window for doorbells, which
// must be addresses no memory backs.
func (m *Memory) MMIOBase() uint64 {
	return alignUp(alignUp(uint64(m.low.end()), 1<<30)+m.heapSize(), 1<<30)
}

// MapMMIO maps the system-area page at a to guest-physical page gpa,
// which must lie at or above MMIOBase, open to the guest program: a write
// there leaves the guest (or signals an ioeventfd). Like ProtectSystem,
// it must be called before the vCPUs run.
func (m *Memory) MapMMIO(a GuestAddr, gpa uint64) error {
	if a < SystemBase || a%PageSize != 0 || a >= SystemBase+SystemSize || gpa%PageSize != 0 || gpa < m.MMIOBase() {
		return fmt.Errorf("MapMMIO %#x to %#x: want a system-area page and a physical page from %#x", a, gpa, m.MMIOBase())
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.putPTE(m.systemPT, (uint64(a)>>12)&511, gpa|ptePresent|pteWrite|pteUser)
	return nil
}

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
// the table at phys, creating it if absent. Only the monitor writes the
// page-table pool, but an entry is still checked to point into it.
func (m *Memory) tableAt(phys, i uint64) (uint64, error) {
	pt := m.low.host[phys : phys+PageSize]
	e := binary.LittleEndian.Uint64(pt[i*8:])
	if e&ptePresent != 0 {
		next := e &^ 0xfff &^ (1 << 63)
		if e&pteLarge != 0 || next < ptPoolBase || next >= m.ptNext {
			return 0, fmt.Errorf("page-table entry %#x at %#x+%d points outside the page-table pool", e, phys, i)
		}
		return next, nil
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

// clearPTE takes the 2 MiB page at a out of the page tables, if mapped.
// Called with mu held; vCPUs may use the entry until flushed (hold.go).
func (m *Memory) clearPTE(a GuestAddr) {
	pdpt, ok := m.tableIfPresent(ptPoolBase, (uint64(a)>>39)&511)
	if !ok {
		return
	}
	if pd, ok := m.tableIfPresent(pdpt, (uint64(a)>>30)&511); ok {
		m.putPTE(pd, (uint64(a)>>21)&511, 0)
	}
}

func (m *Memory) tableIfPresent(phys, i uint64) (uint64, bool) {
	e := binary.LittleEndian.Uint64(m.low.host[phys+i*8:])
	next := e &^ 0xfff &^ (1 << 63)
	return next, e&ptePresent != 0 && e&pteLarge == 0 && next >= ptPoolBase && next < m.ptNext
}

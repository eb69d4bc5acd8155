package store

// list is a double-ended queue of elements. Each element also has a
// position in the database, base for the first and counting up, so that a
// push or pop at either end writes or deletes one record.
type list struct {
	items [][]byte // items[head:] are the elements
	head  int
	base  int64 // the database position of the first element
}

func (l *list) len() int { return len(l.items) - l.head }

func (l *list) at(i int) []byte { return l.items[l.head+i] }

// pushFront adds e before the first element.
func (l *list) pushFront(e []byte) {
	if l.head == 0 {
		// Make room in front: as much as there are elements, so that a
		// run of pushes costs amortized constant time.
		n := l.len()
		room := max(n, 4)
		items := make([][]byte, room+n)
		copy(items[room:], l.items)
		l.items, l.head = items, room
	}
	l.head--
	l.items[l.head] = e
	l.base--
}

// pushBack adds e after the last element.
func (l *list) pushBack(e []byte) { l.items = append(l.items, e) }

// popFront removes and returns the first element.
func (l *list) popFront() []byte {
	e := l.items[l.head]
	l.items[l.head] = nil
	l.head++
	l.base++
	l.compact()
	return e
}

// popBack removes and returns the last element.
func (l *list) popBack() []byte {
	e := l.items[len(l.items)-1]
	l.items[len(l.items)-1] = nil
	l.items = l.items[:len(l.items)-1]
	l.compact()
	return e
}

// compact gives back the space in front once it is most of the slice.
func (l *list) compact() {
	if l.head > 16 && l.head > l.len() {
		items := make([][]byte, l.len(), l.len()+l.len()/2+4)
		copy(items, l.items[l.head:])
		l.items, l.head = items, 0
	}
}

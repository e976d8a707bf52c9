package kv

// List is a double-ended queue of byte strings: O(1) at both ends and by
// index, O(n) in the middle.
type List struct {
	items [][]byte // ring buffer
	head  int
	n     int
}

// Len is the number of elements.
func (l *List) Len() int { return l.n }

func (l *List) slot(i int) int {
	s := l.head + i
	if s >= len(l.items) {
		s -= len(l.items)
	}
	return s
}

func (l *List) grow() {
	if l.n < len(l.items) {
		return
	}
	size := len(l.items) * 2
	if size == 0 {
		size = 4
	}
	items := make([][]byte, size)
	for i := 0; i < l.n; i++ {
		items[i] = l.items[l.slot(i)]
	}
	l.items, l.head = items, 0
}

func (l *List) shrink() {
	if len(l.items) > 64 && l.n < len(l.items)/4 {
		items := make([][]byte, len(l.items)/2)
		for i := 0; i < l.n; i++ {
			items[i] = l.items[l.slot(i)]
		}
		l.items, l.head = items, 0
	}
}

// Index returns element i (0 <= i < Len).
func (l *List) Index(i int) []byte { return l.items[l.slot(i)] }

// Set replaces element i.
func (l *List) Set(i int, v []byte) { l.items[l.slot(i)] = v }

// PushFront adds v at the head.
func (l *List) PushFront(v []byte) {
	l.grow()
	l.head--
	if l.head < 0 {
		l.head += len(l.items)
	}
	l.items[l.head] = v
	l.n++
}

// PushBack adds v at the tail.
func (l *List) PushBack(v []byte) {
	l.grow()
	l.items[l.slot(l.n)] = v
	l.n++
}

// PopFront removes and returns the head (nil when empty).
func (l *List) PopFront() []byte {
	if l.n == 0 {
		return nil
	}
	v := l.items[l.head]
	l.items[l.head] = nil
	l.head = l.slot(1)
	l.n--
	l.shrink()
	return v
}

// PopBack removes and returns the tail (nil when empty).
func (l *List) PopBack() []byte {
	if l.n == 0 {
		return nil
	}
	s := l.slot(l.n - 1)
	v := l.items[s]
	l.items[s] = nil
	l.n--
	l.shrink()
	return v
}

// Insert puts v at index i (0 <= i <= Len), shifting what follows.
func (l *List) Insert(i int, v []byte) {
	l.grow()
	l.n++
	for j := l.n - 1; j > i; j-- {
		l.items[l.slot(j)] = l.items[l.slot(j-1)]
	}
	l.items[l.slot(i)] = v
}

// RemoveAt removes element i.
func (l *List) RemoveAt(i int) {
	for j := i; j < l.n-1; j++ {
		l.items[l.slot(j)] = l.items[l.slot(j+1)]
	}
	l.items[l.slot(l.n-1)] = nil
	l.n--
	l.shrink()
}

// Trim keeps elements start..stop (inclusive, 0 <= start <= stop < Len);
// start > stop empties the list.
func (l *List) Trim(start, stop int) {
	if start > stop {
		*l = List{}
		return
	}
	items := make([][]byte, max(4, stop-start+1))
	for i := start; i <= stop; i++ {
		items[i-start] = l.Index(i)
	}
	l.items, l.head, l.n = items, 0, stop-start+1
}

// Each calls fn for elements from start to stop inclusive (0 <= start,
// stop < Len), forward, stopping when fn returns false.
func (l *List) Each(start, stop int, fn func(i int, v []byte) bool) {
	for i := start; i <= stop; i++ {
		if !fn(i, l.Index(i)) {
			return
		}
	}
}

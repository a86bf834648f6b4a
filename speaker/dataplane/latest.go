package dataplane

import "sync"

// wakeup is a coalescing wake-up signal: any number of Notify calls before
// the receiver reads C count as one. Its zero value is ready to use.
type wakeup struct {
	once sync.Once
	ch   chan struct{}
}

func (w *wakeup) init() { w.ch = make(chan struct{}, 1) }

// C returns the channel the receiver waits on.
func (w *wakeup) C() <-chan struct{} {
	w.once.Do(w.init)
	return w.ch
}

// Notify wakes the receiver without blocking.
func (w *wakeup) Notify() {
	w.once.Do(w.init)
	select {
	case w.ch <- struct{}{}:
	default:
	}
}

// OfferLatest puts v into ch (capacity 1), replacing a value not yet
// received: the receiver only ever wants the newest one.
func OfferLatest[T any](ch chan T, v T) {
	for {
		select {
		case ch <- v:
			return
		default:
		}
		select {
		case <-ch:
		default:
		}
	}
}

'use strict';
// The ordered lane of one connection: "requests a process makes go to Redis in the order it
// made them, whichever client makes them". The original design's example depends on it: it
// pushes three jobs, then asks with client1, client2 and client1 again, and expects them to
// get the first, second and third job.
//
// An entry is placed in the lane when the call is made (synchronously), and sent when every
// earlier entry has been sent. Sending is all a lane waits for, never a reply, except that an
// owner may hold one call in flight at a time (a worker's exchange, as in the Rust client):
// entries that pile up behind it go together in its next call ("group commit"). Consecutive
// entries of one owner are merged into one call when the owner says they fit. node-redis
// writes commands in the order they are issued, so issue order is Redis's order.
//
// An owner has: `ready` (a Promise; the lane waits for it before the owner's first call),
// `opened` (true once `ready` has resolved),
// `busy` (true while its one call is in flight; it calls `lane.kick()` when it is not),
// `fits(items, item)` (whether `item` may join the call being built) and `send(entries)`
// (issues one call at once, and settles each entry's `resolve`/`reject` when it is answered).

class Lane {
  constructor() {
    /** @type {Array<{owner: object, item: unknown, resolve: Function, reject: Function}>} */
    this.entries = [];
    this.pumping = false;
  }

  /** Places `item` of `owner` in the lane; resolves to its answer. */
  add(owner, item) {
    return new Promise((resolve, reject) => {
      const entry = { owner, item, resolve, reject };
      // An empty lane and an owner that can send now: sent at once, which is the order too.
      // Saves the hops through the pump for a caller who awaits each call (an awaited push).
      if (this.entries.length === 0 && !this.pumping && owner.opened && !owner.busy) {
        owner.send([entry]);
        return;
      }
      this.entries.push(entry);
      this.kick();
    });
  }

  /** Makes the lane go on (after an entry is added, or an owner's call was answered). */
  kick() {
    if (this.pumping) return;
    this.pumping = true;
    // A microtask later: calls made in the same tick join the same batch.
    queueMicrotask(() => this.pump());
  }

  async pump() {
    try {
      while (this.entries.length > 0) {
        const head = this.entries[0];
        const owner = head.owner;
        try {
          await owner.ready;
        } catch (err) {
          // The owner never became ready (its queue could not be opened): its entries fail,
          // the others go on.
          this.takeRun(owner, () => true).forEach((e) => e.reject(err));
          continue;
        }
        if (owner.busy) return;
        const items = [];
        const run = this.takeRun(owner, (item) => {
          const fits = items.length === 0 || owner.fits(items, item);
          if (fits) items.push(item);
          return fits;
        });
        owner.send(run);
      }
    } finally {
      this.pumping = false;
      if (this.entries.length > 0 && !this.entries[0].owner.busy) this.kick();
    }
  }

  /** Takes the entries of `owner` from the head, while `accept(item)` says they fit. */
  takeRun(owner, accept) {
    let n = 0;
    while (n < this.entries.length && this.entries[n].owner === owner && accept(this.entries[n].item)) n += 1;
    return this.entries.splice(0, n);
  }
}

module.exports = { Lane };

/**
 * Group commit: items added in the same turn, or while a write is running, are written together
 * in one call, in the order they came. Each `add` settles with its batch's write.
 */
export function groupWrites<T>(write: (items: readonly T[]) => Promise<void>): (item: T) => Promise<void> {
  let pending: { item: T; settle: (e?: unknown) => void }[] = [];
  let writing = false;
  const drain = async (): Promise<void> => {
    await null; // let the items added in the same turn join
    while (pending.length > 0) {
      const batch = pending;
      pending = [];
      try {
        await write(batch.map((b) => b.item));
      } catch (e) {
        for (const b of batch) b.settle(e);
        continue;
      }
      for (const b of batch) b.settle();
    }
    writing = false; // in the same turn as the emptiness check: an item added later starts a new round
  };
  return (item) =>
    new Promise<void>((resolve, reject) => {
      pending.push({ item, settle: (e) => (e === undefined ? resolve() : reject(e)) });
      if (!writing) {
        writing = true;
        void drain();
      }
    });
}

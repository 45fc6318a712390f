// The one binary search the replication tables use: over items sorted so that `pred` holds on a
// prefix (e.g. "starts at or before x"), the index of the last item where it holds, or -1.
export function lastWhere<T>(items: readonly T[], pred: (item: T) => boolean): number {
  let lo = 0;
  let hi = items.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (pred(items[mid]!)) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found;
}

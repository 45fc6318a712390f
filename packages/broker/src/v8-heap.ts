// How fast the V8 heap of a broker process may grow between full (mark-compact) collections.
//
// A broker's JavaScript heap is small (15 to 20 MB live for one broker under the per-record
// bench) while data streams through it at tens of MB/s, in socket reads, batch views, pending
// requests and the Raft tail. V8 sizes the next old-generation limit from the live size times a
// factor it derives from its GC and mutator speeds; for a small heap that factor leaves a few MB
// of headroom, so the broker ran a mark-compact about every 100 ms under load (76 in 12 s of the
// per-record bench, `node --trace-gc`), and the GC took 28% of the broker's CPU samples.
// `--heap-growing-percent=N` makes V8 use the growth factor 1 + N/100 instead of its own: 200
// and 400 cut the mark-compacts to 23 and 12; with 300, broker CPU per record went from 1.0-1.1
// to 0.75-0.8 us and the warm per-record send() rate from ~750 k to ~840 k records/s
// (docs/benchmarks.md), for about 25 MB more resident memory under load (158 -> 183 MB); an
// idle broker is unchanged (no allocation, no growth).
//
// The flag is one V8 reads each time it recomputes the limit, so setting it once the process is
// running works (unlike the initial heap sizes, fixed when the heap is made); `runBroker` sets it
// first thing. A broker embedded in another program (`Broker.start`) leaves that program's V8
// alone. A user's own `node --heap-growing-percent=N ...` wins (0 is V8's own dynamic factor).
import { setFlagsFromString } from 'node:v8';

/** The growth a broker process gets unless its command line chose one (see above). */
export const HEAP_GROWING_PERCENT_DEFAULT = 300;

const FLAG = /^--heap[-_]growing[-_]percent(?:=(.*))?$/;

/**
 * The percentage the process's own node flags (`process.execArgv`) chose, or null when they
 * chose none. A flag without a usable number is ignored, as V8 would reject it at startup.
 */
export function heapGrowingPercentOf(execArgv: readonly string[]): number | null {
  let chosen: number | null = null;
  for (let i = 0; i < execArgv.length; i++) {
    const m = FLAG.exec(execArgv[i]!);
    if (m === null) continue;
    const text = m[1] ?? execArgv[i + 1];
    if (text === undefined || !/^\d+$/.test(text)) continue;
    chosen = Number(text); // the last one counts, as with V8's own parsing
  }
  return chosen;
}

/**
 * Gives this process the broker's heap growth unless its node flags chose one; returns the
 * percentage in effect (the `broker started` line reports it).
 */
export function tuneBrokerHeap(execArgv: readonly string[] = process.execArgv): number {
  const own = heapGrowingPercentOf(execArgv);
  if (own !== null) return own;
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT_DEFAULT}`);
  return HEAP_GROWING_PERCENT_DEFAULT;
}

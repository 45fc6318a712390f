// Allocation sampler for benchmark brokers (issue 9, lat): preload it with
// `--require benchmarks/tools/heap-sampler.cjs` (cluster-latency.ts `--heap-sample DIR` does).
// The first SIGUSR2 starts V8's sampling heap profiler with the objects later collected by
// minor and major GCs kept (so the profile is what was ALLOCATED, not what is still live), the
// second stops it and writes `<HEAP_SAMPLE_DIR>/heap.<pid>.<n>.heapprofile` (DevTools format).
// A diagnostic only: never loaded by a broker outside the benchmarks.
'use strict';
const inspector = require('node:inspector');
const { writeFileSync } = require('node:fs');
const { join } = require('node:path');

const dir = process.env.HEAP_SAMPLE_DIR;
const interval = Number(process.env.HEAP_SAMPLE_INTERVAL ?? 4096);
if (dir) {
  const session = new inspector.Session();
  session.connect();
  let on = false;
  let n = 0;
  process.on('SIGUSR2', () => {
    if (!on) {
      on = true;
      session.post('HeapProfiler.startSampling', {
        samplingInterval: interval,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: true,
      });
      return;
    }
    on = false;
    session.post('HeapProfiler.stopSampling', (err, r) => {
      if (err) return;
      writeFileSync(join(dir, `heap.${process.pid}.${n++}.heapprofile`), JSON.stringify(r.profile));
    });
  });
}

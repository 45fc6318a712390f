#!/usr/bin/env node
// The `streambus` executable as installed (package.json "bin"). It is committed, not built, so
// that `pnpm install` on a fresh clone can link it before `tsc -b` has made dist/ (a bin pointing
// into dist/ made pnpm warn "Failed to create bin ... ENOENT"). The program is dist/bin.js.
//
// CommonJS on purpose: libuv sizes its thread pool (fs writes, fsyncs) from UV_THREADPOOL_SIZE
// when the pool is first used, and an ES module entry is read through the pool, too late for it.
// This file is read synchronously, so setting the variable here sizes the pool of a broker that
// `streambus broker start` or `streambus dev` runs in this process, and is inherited by the
// brokers `streambus dev --nodes` starts. A value the user set is kept. 16 is
// UV_THREADPOOL_SIZE_DEFAULT of packages/broker/src/thread-pool.ts (a test checks they agree).
'use strict';
const own = process.env.UV_THREADPOOL_SIZE;
if (own === undefined || own === '') process.env.UV_THREADPOOL_SIZE = '16';
import('../dist/bin.js').catch((err) => {
  if (err?.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist/bin.js')) {
    process.stderr.write(
      'streambus: the CLI is not built yet; run `npm start` or `npm test` first\n',
    );
    process.exit(1);
  }
  throw err;
});

#!/usr/bin/env node
// The `streambus` executable as installed (package.json "bin"). It is committed, not built, so
// that `pnpm install` on a fresh clone can link it before `tsc -b` has made dist/ (a bin pointing
// into dist/ made pnpm warn "Failed to create bin ... ENOENT"). The program is dist/bin.js.
import('../dist/bin.js').catch((err) => {
  if (err?.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist/bin.js')) {
    process.stderr.write(
      'streambus: the CLI is not built yet; run `npm start` or `npm test` first\n',
    );
    process.exit(1);
  }
  throw err;
});

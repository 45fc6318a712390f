// Runs every packages/raft/testdata/*.txt scenario and compares the regenerated output with the
// file. `REWRITE=1 pnpm exec vitest run packages/raft` rewrites the files instead (review the
// diff before committing it).
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runScenarioFile } from './scenario.js';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'testdata');
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.txt'))
  .sort();

describe('raft scenarios (testdata)', () => {
  it('has scenario files', () => {
    expect(files.length).toBeGreaterThanOrEqual(8);
  });
  for (const file of files) {
    it(file, () => {
      const path = join(dir, file);
      const source = readFileSync(path, 'utf8');
      const output = runScenarioFile(source);
      if (process.env.REWRITE === '1') {
        writeFileSync(path, output);
        return;
      }
      expect(output).toBe(source);
      // Scenarios named *-unsafe-* exist to show the checkers fail; every other one must be clean.
      if (file.includes('unsafe')) expect(output).toContain('VIOLATION');
      else expect(output).not.toContain('VIOLATION');
    });
  }
});

// Runs every packages/broker/testdata/groups/*.txt scenario and compares the regenerated output
// with the file. `REWRITE=1 ./node_modules/.bin/vitest run group-scenario` rewrites the files
// instead (review the diff before committing it).
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runGroupScenario } from './group-scenario.js';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'testdata', 'groups');
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.txt'))
  .sort();

describe('group scenarios (testdata/groups)', () => {
  it('has scenario files', () => {
    expect(files.length).toBeGreaterThanOrEqual(6);
  });
  for (const file of files) {
    it(file, () => {
      const path = join(dir, file);
      const source = readFileSync(path, 'utf8');
      const output = runGroupScenario(source);
      if (process.env.REWRITE === '1') {
        writeFileSync(path, output);
        return;
      }
      expect(output).toBe(source);
      expect(output).not.toContain('OWNERSHIP BUG');
      expect(output).not.toContain('DIFFERS');
    });
  }
});
